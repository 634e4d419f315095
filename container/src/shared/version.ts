import { version } from '../../../package.json';

/** The agent's version, recorded in every manifest. */
export const AGENT_VERSION = version;
