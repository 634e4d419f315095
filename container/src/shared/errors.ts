/**
 * The agent's error type: a message for a person, printed without a stack trace, and an exit code.
 * Anything else that escapes is a bug and is printed with its stack.
 */
export class AgentError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'AgentError';
  }
}

/** Bad command-line input: exit code 2, like most Unix tools. */
export class UsageError extends AgentError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** A quoted SQL string: backslash escapes and doubled quotes stay inside it. */
const SQL_STRING = String.raw`'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"`;
/** What may hold a password or its hash: a quoted string, a PASSWORD('…') call, or 0x hex (SHOW CREATE USER). */
const SQL_SECRET = String.raw`(?:PASSWORD\s*\(\s*(?:${SQL_STRING})\s*\)|${SQL_STRING}|0x[0-9a-f]+)`;

/**
 * The shapes a MySQL/MariaDB password or hash takes in SQL that mysql's stderr may echo (roles restored from
 * a globals companion): `IDENTIFIED BY [PASSWORD] '…'`, `IDENTIFIED VIA|WITH plugin USING|AS|BY '…'`
 * (and `OR plugin USING '…'` after it), `PASSWORD('…')`, and a bare mysql_native_password hash `*` + 40 hex.
 */
const SQL_PASSWORD_PATTERNS: readonly RegExp[] = [
  new RegExp(String.raw`(\bIDENTIFIED\s+BY\s+(?:PASSWORD\s+)?)${SQL_SECRET}`, 'gi'),
  new RegExp(String.raw`(\b(?:IDENTIFIED\s+(?:VIA|WITH)|OR)\s+[\`'"]?[\w-]+[\`'"]?\s+(?:USING|AS|BY)\s+)${SQL_SECRET}`, 'gi'),
  new RegExp(String.raw`(\bPASSWORD\s*\(\s*)(?:${SQL_STRING})(?=\s*\))`, 'gi'),
  /()\*[0-9A-F]{40}\b/gi,
];

/**
 * Removes secrets from text that goes to logs or errors: the known secret values themselves,
 * and the shapes secrets take in tool output (URLs with a password, password=… pairs, MySQL
 * password clauses and hashes).
 */
export class Redactor {
  private readonly secrets = new Set<string>();

  add(secret: string | undefined): void {
    if (secret && secret.length >= 3) this.secrets.add(secret);
  }

  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('***');
    for (const pattern of SQL_PASSWORD_PATTERNS) out = out.replace(pattern, '$1***');
    return out
      .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@\s]+@/gi, '$1***@')
      .replace(/(password\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)/gi, '$1***');
  }
}

/** The process-wide redactor: every secret the agent learns is registered here. */
export const redactor = new Redactor();
