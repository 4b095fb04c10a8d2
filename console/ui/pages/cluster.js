// Cluster: every process of the pipeline on this log, its roles, and the
// partitions of each consumer it owns now (GET /v1/cluster). Partitions move
// when a process joins, stops or dies; this page shows where they are.

import { getJSON } from "../api.js";
import { h, replace, int, time, badge, table, empty } from "../dom.js";

export default {
  id: "cluster",
  title: "Cluster",
  icon: "▣",
  mount(root) {
    root.append(
      h("div", { class: "page-head" }, h("h1", {}, "Cluster"), h("p", {}, "The processes of the pipeline, their roles and the partitions each one owns.")),
      h("section", { class: "card", id: "cluster-nodes" }, empty("Loading…")),
      h("section", { class: "card", id: "cluster-consumers" }),
    );
  },
  async update() {
    const nodesOut = document.getElementById("cluster-nodes");
    const consOut = document.getElementById("cluster-consumers");
    if (!nodesOut) return;
    let ans;
    try {
      ans = await getJSON("/v1/cluster");
    } catch (e) {
      replace(nodesOut, h("div", { class: "card-body error-text" }, e.message));
      return;
    }
    const nodes = ans.nodes || [];
    replace(
      nodesOut,
      h("div", { class: "card-head" }, h("h2", {}, "Processes"), h("div", { class: "meta", id: "cluster-count", "data-value": nodes.length }, `${int(nodes.length)} live`)),
      nodes.length
        ? table(
            [{ label: "Process" }, { label: "Roles" }, { label: "Address" }, { label: "Owns" }, { label: "Last seen" }, { label: "Started" }],
            nodes.map((n) =>
              h(
                "tr",
                { class: "cluster-node", "data-node": n.id },
                h("td", { class: "name mono" }, n.id),
                h("td", {}, (n.roles || []).map((r) => badge(r, "info"))),
                h("td", { class: "mono" }, n.addr || "–"),
                h("td", { class: "num owned", "data-value": ownedCount(n) }, int(ownedCount(n))),
                h("td", { class: "mono" }, time(n.seen)),
                h("td", { class: "mono" }, time(n.started)),
              ),
            ),
          )
        : empty("No process has said it is alive (the log may be unreachable)."),
    );
    // Per consumer, which process owns each partition.
    const owners = new Map(); // consumer -> Map(partition -> node)
    for (const n of nodes) {
      for (const [cons, parts] of Object.entries(n.owns || {})) {
        if (!owners.has(cons)) owners.set(cons, new Map());
        for (const p of parts) owners.get(cons).set(p, n.id);
      }
    }
    const consumers = [...owners.keys()].sort();
    replace(
      consOut,
      h("div", { class: "card-head" }, h("h2", {}, "Partitions by consumer")),
      consumers.length
        ? table(
            [{ label: "Consumer" }, { label: "Partition", cls: "num" }, { label: "Owned by" }],
            consumers.flatMap((c) =>
              [...owners.get(c).entries()]
                .sort((a, b) => a[0] - b[0])
                .map(([p, node]) =>
                  h("tr", { class: "cluster-owner", "data-consumer": c, "data-partition": p, "data-node": node }, h("td", { class: "name" }, c), h("td", { class: "num" }, p), h("td", { class: "mono" }, node)),
                ),
            ),
          )
        : empty("No partition is owned yet."),
    );
  },
};

function ownedCount(n) {
  return Object.values(n.owns || {}).reduce((a, parts) => a + parts.length, 0);
}
