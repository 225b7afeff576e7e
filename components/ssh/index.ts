// Remote steps over SSH without a provider plugin: SshCommand (a dynamic resource) and its connection type.
export { contentUpload, fileUpload, SshCommand } from "./ssh-command";
