/**
 * A small, reusable command-line layer over node's util.parseArgs: every command declares its
 * options once, with a description, and gets usage text and clear errors for free.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './errors';

export enum OptionKind {
  STRING = 'string',
  FLAG = 'flag',
}

export interface OptionSpec {
  readonly kind: OptionKind;
  readonly description: string;
  readonly required?: boolean;
  /** Shown in usage, for example `NAME`. */
  readonly placeholder?: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** An operand given by position, after or among the options (PostgreSQL's archive_command gives its %p so). */
export interface PositionalSpec {
  /** Shown in usage as `<name>`, and read back with ParsedArgs.positional(name). */
  readonly name: string;
  readonly description: string;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly options: OptionSpecs;
  /** Operands the command requires, each exactly once, in this order; a command without them takes none. */
  readonly positionals?: readonly PositionalSpec[];
}

/** The parsed options of one command, read through typed accessors. */
export class ParsedArgs {
  constructor(private readonly command: CommandSpec, private readonly values: Record<string, string | boolean | undefined>,
    private readonly operands: readonly string[] = []) {}

  /** A required operand, by the name its PositionalSpec gives it. */
  positional(name: string): string {
    const index = (this.command.positionals ?? []).findIndex((p) => p.name === name);
    if (index < 0 || this.operands[index] === undefined) throw new UsageError(`<${name}> is required\n\n${usage(this.command)}`);
    return this.operands[index];
  }

  string(name: string): string | undefined {
    const value = this.values[name];
    return typeof value === 'string' ? value : undefined;
  }

  requiredString(name: string): string {
    const value = this.string(name);
    if (value === undefined || value === '') {
      throw new UsageError(`--${name} is required\n\n${usage(this.command)}`);
    }
    return value;
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /** A whole number, or undefined when absent. Accepts size suffixes (k, M, G: powers of 1024). */
  size(name: string): number | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    const m = /^(\d+)\s*([kmg]i?b?)?$/i.exec(text.trim());
    if (!m) throw new UsageError(`--${name} must be a whole number, optionally with k, M or G (got '${text}')`);
    const unit = (m[2] ?? '').charAt(0).toLowerCase();
    const multiplier = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
    return Number(m[1]) * multiplier;
  }
}

export function usage(command: CommandSpec): string {
  const lines = Object.entries(command.options).map(([name, spec]) => {
    const left = spec.kind === OptionKind.FLAG ? `--${name}` : `--${name} ${spec.placeholder ?? 'VALUE'}`;
    return `  ${left.padEnd(30)} ${spec.description}${spec.required ? ' (required)' : ''}`;
  });
  const positionals = command.positionals ?? [];
  const operands = positionals.map((p) => ` <${p.name}>`).join('');
  const described = positionals.map((p) => `  ${`<${p.name}>`.padEnd(30)} ${p.description}`);
  return `usage: restorable ${command.name}${operands} [options]\n${command.summary}\n\n${[...described, ...lines].join('\n')}`;
}

/** Parses argv for one command; unknown options and missing values become UsageErrors. */
export function parseCommandArgs(command: CommandSpec, argv: readonly string[]): ParsedArgs {
  const options = Object.fromEntries(Object.entries(command.options)
    .map(([name, spec]) => [name, { type: spec.kind === OptionKind.FLAG ? 'boolean' as const : 'string' as const }]));
  const expected = command.positionals ?? [];
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: expected.length > 0 }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${usage(command)}`);
  }
  if (positionals.length !== expected.length) {
    const wanted = expected.map((p) => `<${p.name}>`).join(' ');
    throw new UsageError(`expected ${wanted}, got ${positionals.length === 0 ? 'none' : positionals.map((p) => `'${p}'`).join(' ')}\n\n${usage(command)}`);
  }
  const parsed = new ParsedArgs(command, values, positionals);
  for (const [name, spec] of Object.entries(command.options)) {
    if (spec.required) parsed.requiredString(name);
  }
  return parsed;
}

/** The region of the AWS services a command calls (S3, Secrets Manager, CloudWatch): every command takes it. See aws.ts. */
export const REGION_OPTIONS: OptionSpecs = {
  'region': {
    kind: OptionKind.STRING, placeholder: 'REGION',
    description: 'AWS region of the bucket, secrets and metrics (default: AWS_REGION, AWS_DEFAULT_REGION, the profile\'s region)',
  },
};

/** Where a source's backups live: every command that reads or writes them takes these. */
export const SOURCE_OPTIONS: OptionSpecs = {
  'source': { kind: OptionKind.STRING, placeholder: 'NAME', description: 'source name (a-z, 0-9, -)', required: true },
  'bucket': { kind: OptionKind.STRING, placeholder: 'BUCKET', description: 'the backup bucket', required: true },
  'prefix': { kind: OptionKind.STRING, placeholder: 'PREFIX', description: 'key prefix in the bucket (default: none)' },
  ...REGION_OPTIONS,
};
