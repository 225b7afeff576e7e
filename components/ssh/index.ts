// Remote steps over SSH without a provider plugin: SshCommand (a dynamic resource) and its connection type.
export { contentUpload, fileUpload, sha256Hex, SSH_COMMAND_TYPE, SshCommand } from "./ssh-command";
export type { SshCommandArgs, SshLogging, SshUpload } from "./ssh-command";
export { SSH_DEFAULTS } from "./ssh-connection";
export type { SshConnection } from "./ssh-connection";
