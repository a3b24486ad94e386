// Names of the statuses as the page shows them, and the CSS class of each.
import { ActionStatus, EdgeStatus, ExecutionStatus } from "./gen/workflow/executions/v1/executions_pb";

/** "RUNNING" for EXECUTION_STATUS_RUNNING, and so on. */
export function executionStatusName(status: ExecutionStatus): string {
  return (ExecutionStatus[status] ?? "UNSPECIFIED").toLowerCase();
}

/** "idle", "running", ... for an action status. */
export function actionStatusName(status: ActionStatus): string {
  return (ActionStatus[status] ?? "UNSPECIFIED").toLowerCase();
}

/** "open" or "closed". */
export function edgeStatusName(status: EdgeStatus): string {
  return (EdgeStatus[status] ?? "UNSPECIFIED").toLowerCase();
}

/** The statuses a list can be filtered by. */
export const EXECUTION_STATUSES = [
  ExecutionStatus.RUNNING,
  ExecutionStatus.COMPLETED,
  ExecutionStatus.FAILED,
  ExecutionStatus.STOPPED,
];

/** Whether an execution status never changes again. */
export function isTerminal(status: ExecutionStatus): boolean {
  return status !== ExecutionStatus.RUNNING && status !== ExecutionStatus.UNSPECIFIED;
}
