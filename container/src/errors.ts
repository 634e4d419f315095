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

/**
 * Removes secrets from text that goes to logs or errors: the known secret values themselves,
 * and the shapes secrets take in tool output (URLs with a password, password=… pairs).
 */
export class Redactor {
  private readonly secrets = new Set<string>();

  add(secret: string | undefined): void {
    if (secret && secret.length >= 3) this.secrets.add(secret);
  }

  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('***');
    return out
      .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@\s]+@/gi, '$1***@')
      .replace(/(password\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)/gi, '$1***');
  }
}

/** The process-wide redactor: every secret the agent learns is registered here. */
export const redactor = new Redactor();
