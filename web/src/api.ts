// The API client: generated from proto/ (protoc-gen-es) over connect-web's gRPC-Web
// transport, to the server that served this page. The bearer token, when the server asks
// for one, lives in this tab's session storage only.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
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

/**
 * The metadata of the `google.rpc.ErrorInfo` the server attaches to every error (e.g.
 * `resume_cursor` when WatchExecutions ends for a shutdown), read from the wire by hand:
 * three fields (reason = 1, domain = 2, metadata = 3 as map entries of key = 1, value = 2)
 * do not justify generating google/rpc/error_details.proto into the bundle.
 */
export function errorMetadata(error: unknown): Record<string, string> {
  const found: Record<string, string> = {};
  if (!(error instanceof ConnectError)) return found;
  for (const detail of error.details) {
    if (!("type" in detail) || detail.type !== "google.rpc.ErrorInfo") continue;
    try {
      const info = new BinaryReader(detail.value);
      while (info.pos < info.len) {
        const [field, wire] = info.tag();
        if (field !== 3 || wire !== WireType.LengthDelimited) {
          info.skip(wire, field);
          continue;
        }
        const entry = new BinaryReader(info.bytes());
        let key = "";
        let value = "";
        while (entry.pos < entry.len) {
          const [f, w] = entry.tag();
          if (f === 1 && w === WireType.LengthDelimited) key = entry.string();
          else if (f === 2 && w === WireType.LengthDelimited) value = entry.string();
          else entry.skip(w, f);
        }
        found[key] = value;
      }
    } catch {
      // A detail that does not decode says nothing.
    }
  }
  return found;
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
