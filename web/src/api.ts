// The API client: generated from proto/ (protoc-gen-es) over connect-web's gRPC-Web
// transport, to the server that served this page. The bearer token, when the server asks
// for one, lives in this tab's session storage only.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ExecutionService } from "./gen/workflow/executions/v1/executions_pb";

const TOKEN_KEY = "executions.token";

/** The token this tab sends, if any. */
export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps `value` as this tab's token (none when empty). */
export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  role = undefined;
  delete document.body.dataset["role"];
}

const bearer: Interceptor = (next) => async (request) => {
  const t = token();
  if (t) request.header.set("authorization", `Bearer ${t}`);
  return next(request);
};

/** The client of ExecutionService. */
export const api = createClient(
  ExecutionService,
  createGrpcWebTransport({ baseUrl: location.origin, useBinaryFormat: true, interceptors: [bearer] }),
);

/** Whether `error` says the call needs a (different) token. */
export function needsToken(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.Unauthenticated;
}

/** Whether `error` is the cancellation of a call this page gave up on. */
export function cancelled(error: unknown): boolean {
  return (
    (error instanceof ConnectError && error.code === Code.Canceled) ||
    (error instanceof DOMException && error.name === "AbortError")
  );
}

/** A short sentence about a failed call, for the page. */
export function describe(error: unknown): string {
  if (error instanceof ConnectError) {
    return `${Code[error.code]}: ${error.rawMessage}`;
  }
  return String(error);
}

/** What the caller's token may do. */
export type Role = "writer" | "reader";
let role: Role | undefined;

/**
 * What the current token may do. The server does not say; it refuses a reader's
 * StopExecution with PERMISSION_DENIED before looking at the request, while a writer's
 * call with an empty id is refused as INVALID_ARGUMENT, also before anything happens.
 * So one StopExecution with no id tells them apart and changes nothing.
 */
export async function currentRole(): Promise<Role> {
  if (role) return role;
  try {
    await api.stopExecution({ id: "", reason: "dashboard role probe (changes nothing)" });
    role = "writer";
  } catch (error) {
    if (needsToken(error)) throw error;
    role = error instanceof ConnectError && error.code === Code.PermissionDenied ? "reader" : "writer";
  }
  // For styles and tests: what the page found out.
  document.body.dataset["role"] = role;
  return role;
}
