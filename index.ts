// slotshift: zero-downtime, health-gated blue/green weight shifts of one web app on one host.
// The config is validated in full before any resource is declared (see components/stack.ts).
import { defineStack } from "./components/stack";

const stack = defineStack();

export const url = stack.url;
export const hostAddress = stack.hostAddress;
export const liveVersion = stack.liveVersion;
export const lastDeploy = stack.lastDeploy;
export const sshCommand = stack.sshCommand;
export const agentStatusCommand = stack.agentStatusCommand;
export const rollbackCommand = stack.rollbackCommand;
export const dashboardCommand = stack.dashboardCommand;
export const dashboardTokenCommand = stack.dashboardTokenCommand;
