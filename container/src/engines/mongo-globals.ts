/**
 * A MongoDB backup's users and roles companion: the database's usersInfo (no credentials) and rolesInfo (with
 * privileges), as canonical Extended JSON. A restore never creates them: the companion holds no password, and a
 * backup is untrusted input (a role it defines could grant anything on the target server). It reports each one,
 * refused with why, so that a person recreates them with createUser / createRole.
 */
import { BSON, Document } from 'mongodb';
import { AgentError } from '../shared/errors';
import { Refusal } from './engine';

export interface MongoGlobals {
  readonly database: string;
  readonly users: readonly Document[];
  readonly roles: readonly Document[];
}

/** Text from an untrusted companion as one printable line. */
function printable(value: unknown): string {
  return String(value).replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').slice(0, 200);
}

export function parseMongoGlobals(text: string): MongoGlobals {
  let parsed: Document;
  try {
    parsed = BSON.EJSON.parse(text, { relaxed: false }) as Document;
  } catch (err) {
    throw new AgentError(`the backup's users and roles companion is not Extended JSON: ${(err as Error).message}`);
  }
  const list = (value: unknown) => (Array.isArray(value) ? value.filter((v): v is Document => typeof v === 'object' && v !== null) : []);
  return { database: typeof parsed.database === 'string' ? parsed.database : '', users: list(parsed.users), roles: list(parsed.roles) };
}

/** Roles as `role@db`, the way usersInfo and rolesInfo list them. */
function roleNames(value: unknown): string {
  const roles = Array.isArray(value) ? value as Document[] : [];
  return roles.map((r) => `${printable(r.role)}@${printable(r.db)}`).join(', ') || 'none';
}

/** Every user and role of the companion, as refusals that say how to recreate it on the target. */
export function reportMongoGlobals(globals: MongoGlobals, sourceDatabase: string, targetDatabase: string): Refusal[] {
  const where = targetDatabase === sourceDatabase ? targetDatabase : `${targetDatabase} (the backup's roles name ${sourceDatabase})`;
  return [
    ...globals.roles.map((role) => ({
      what: `role ${printable(role.role)}@${printable(role.db)}`,
      why: `a restore never creates roles from a backup (untrusted input); recreate it in ${where} with createRole: inherits ${roleNames(role.roles)}, ` +
        `${Array.isArray(role.privileges) ? role.privileges.length : 0} privileges listed in the companion`,
    })),
    ...globals.users.map((user) => ({
      what: `user ${printable(user.user)}@${printable(user.db)}`,
      why: `a restore never creates users: the backup holds no credentials; recreate it in ${where} with createUser and a new password, roles ${roleNames(user.roles)}`,
    })),
  ];
}
