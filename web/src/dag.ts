// One execution drawn as its DAG: each node at the template's `positions`, on a canvas of
// the template's `width` x `height`; actions coloured by status, with their times and
// failure note in an SVG <title> (shown on hover, read by screen readers); edges solid
// when open, dashed when closed.
import { s } from "./dom";
import type { ActionStat, Execution, Position } from "./gen/workflow/executions/v1/executions_pb";
import { actionStatusName, edgeStatusName } from "./status";
import { formatTime } from "./time";

const NODE_W = 170;
const NODE_H = 48;

/** The action stat of a node, if it has one. */
export function actionStat(execution: Execution, nodeId: string): ActionStat | undefined {
  const kind = execution.stats[nodeId]?.kind;
  return kind?.case === "action" ? kind.value : undefined;
}

/** Lines that describe an action's state: status, times, failure note. */
export function actionLines(stat: ActionStat | undefined): string[] {
  if (!stat) return [];
  const lines = [`status: ${actionStatusName(stat.status)}`];
  const times: [string, typeof stat.scheduledAt][] = [
    ["scheduled", stat.scheduledAt],
    ["started", stat.startedAt],
    ["completed", stat.completedAt],
    ["failed", stat.failedAt],
    ["stopped", stat.stoppedAt],
  ];
  for (const [label, at] of times) if (at) lines.push(`${label}: ${formatTime(at)}`);
  if (stat.failureNote) lines.push(`failure note: ${stat.failureNote}`);
  return lines;
}

/**
 * Positions of the nodes: the template's, and for a node it leaves out, a place by depth
 * (longest path from a root) so that a template without a layout still draws.
 */
function layout(execution: Execution): { at: Map<string, Position>; width: number; height: number } {
  const template = execution.template;
  const at = new Map<string, Position>();
  if (!template) return { at, width: 0, height: 0 };
  const depth = new Map<string, number>();
  const incoming = new Map<string, string[]>();
  for (const e of template.edges) incoming.set(e.target, [...(incoming.get(e.target) ?? []), e.source]);
  const depthOf = (id: string, seen: Set<string>): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (seen.has(id)) return 0;
    seen.add(id);
    const d = Math.max(-1, ...(incoming.get(id) ?? []).map((p) => depthOf(p, seen))) + 1;
    depth.set(id, d);
    return d;
  };
  const perDepth = new Map<number, number>();
  for (const node of template.nodes) {
    const given = template.positions[node.id];
    if (given) {
      at.set(node.id, given);
      continue;
    }
    const d = depthOf(node.id, new Set());
    const column = perDepth.get(d) ?? 0;
    perDepth.set(d, column + 1);
    at.set(node.id, { x: 20 + column * (NODE_W + 30), y: 20 + d * (NODE_H + 60) } as Position);
  }
  let width = template.width;
  let height = template.height;
  for (const p of at.values()) {
    width = Math.max(width, p.x + NODE_W + 10);
    height = Math.max(height, p.y + NODE_H + 10);
  }
  return { at, width, height };
}

/** The SVG of an execution's DAG. */
export function drawDag(execution: Execution): SVGSVGElement {
  const { at, width, height } = layout(execution);
  const template = execution.template;
  const svg = s("svg", {
    class: "dag",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": `Workflow of ${execution.name || execution.hashid}`,
  });
  if (!template) return svg;
  svg.appendChild(
    s(
      "defs",
      {},
      s(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }),
      ),
    ),
  );
  const centre = (id: string) => {
    const p = at.get(id) ?? ({ x: 0, y: 0 } as Position);
    return { x: p.x + NODE_W / 2, y: p.y + NODE_H / 2 };
  };
  for (const edge of template.edges) {
    const id = `${edge.source}-${edge.target}`;
    const kind = execution.stats[id]?.kind;
    const status = kind?.case === "edge" ? edgeStatusName(kind.value.status) : "closed";
    const a = centre(edge.source);
    const b = centre(edge.target);
    // From the bottom of the source to the top of the target (or sideways when level).
    const down = Math.abs(b.y - a.y) >= NODE_H;
    const from = down ? { x: a.x, y: a.y + (b.y > a.y ? NODE_H / 2 : -NODE_H / 2) } : { x: a.x + (b.x > a.x ? NODE_W / 2 : -NODE_W / 2), y: a.y };
    const to = down ? { x: b.x, y: b.y + (b.y > a.y ? -NODE_H / 2 : NODE_H / 2) } : { x: b.x + (b.x > a.x ? -NODE_W / 2 : NODE_W / 2), y: b.y };
    const mid = (from.y + to.y) / 2;
    const d = down
      ? `M ${from.x} ${from.y} C ${from.x} ${mid}, ${to.x} ${mid}, ${to.x} ${to.y}`
      : `M ${from.x} ${from.y} L ${to.x} ${to.y}`;
    svg.appendChild(
      s(
        "path",
        { class: `edge edge-${status}`, d, "marker-end": "url(#arrow)", "data-edge": id, "data-status": status },
        s("title", {}, `${edge.source} → ${edge.target}: ${status}`),
      ),
    );
  }
  for (const node of template.nodes) {
    const p = at.get(node.id) ?? ({ x: 0, y: 0 } as Position);
    const stat = actionStat(execution, node.id);
    const status = node.type === "Start" ? "start" : stat ? actionStatusName(stat.status) : "idle";
    const title = [`${node.name || node.id} (${node.type})`, ...actionLines(stat)].join("\n");
    svg.appendChild(
      s(
        "g",
        { class: `node node-${status}`, transform: `translate(${p.x} ${p.y})`, "data-node": node.id, "data-status": status },
        s("title", {}, title),
        s("rect", { width: NODE_W, height: NODE_H, rx: 8, ry: 8 }),
        s("text", { x: NODE_W / 2, y: 20, "text-anchor": "middle", class: "node-name" }, clip(node.name || node.id, 22)),
        s("text", { x: NODE_W / 2, y: 38, "text-anchor": "middle", class: "node-status" }, status),
      ),
    );
  }
  return svg;
}

/** `text` cut to `n` characters, with an ellipsis when cut. */
function clip(text: string, n: number): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}
