// What differs between queues and channels: the noun, extra table columns, detail facts.
import { count, perSecond } from "./format.js";

export const KINDS = {
  queues: {
    noun: "queue",
    columns: [
      { title: "Depth", num: true, key: "depth", cell: (d) => count(d.depth) },
      { title: "Scheduled", num: true, key: "scheduled", cell: (d) => count(d.scheduled ?? 0) },
      { title: "In flight", num: true, key: "in-flight", cell: (d) => count(d.in_flight) },
      { title: "Consumers", num: true, key: "consumers", cell: (d) => count(d.consumers) },
    ],
    facts: (d) => [
      ["Depth", count(d.depth), "depth"],
      ["Scheduled", count(d.scheduled ?? 0), "scheduled"],
      ["In flight", count(d.in_flight), "in-flight"],
      ["Consumers", count(d.consumers), "consumers"],
      ["In / s", perSecond(d.rates.published_per_s), "in"],
      ["Out / s", perSecond(d.rates.delivered_per_s), "out"],
      ["Owner", d.owner || "(deleted user)", "owner"],
      ["Durable", d.policy.durable ? "yes" : "no", "durable"],
      ["Retried", count(d.retried ?? 0), "retried"],
      ["Dead-lettered", deadLettered(d.dead_lettered_by_reason), "dead-lettered"],
      ["Retry back-off", retryPolicy(d.policy), "retry"],
    ],
  },
  channels: {
    noun: "channel",
    columns: [
      { title: "Type", key: "type", cell: (d) => d.type ?? "fanout" },
      { title: "Subscribers", num: true, key: "subscribers", cell: (d) => count(d.subscribers) },
      {
        title: "Durable subs",
        num: true,
        key: "durables",
        cell: (d) => count(d.durable_subscriptions.length),
      },
    ],
    facts: (d) => [
      ["Type", d.type ?? "fanout", "type"],
      ["Subscribers", count(d.subscribers), "subscribers"],
      ["Bound queues", count(d.bindings ?? 0), "bindings"],
      ["In / s", perSecond(d.rates.published_per_s), "in"],
      ["Out / s", perSecond(d.rates.delivered_per_s), "out"],
      ["Owner", d.owner || "(deleted user)", "owner"],
    ],
  },
};

// {"rejected": 2, "expired": 1} -> "1 expired, 2 rejected"
function deadLettered(byReason) {
  const reasons = Object.entries(byReason || {}).sort(([a], [b]) => a.localeCompare(b));
  return reasons.length ? reasons.map(([why, n]) => `${count(n)} ${why}`).join(", ") : "0";
}

function retryPolicy(policy) {
  if (!policy.retry_delay_ms) return "none";
  let text = `${count(policy.retry_delay_ms)} ms`;
  if (policy.retry_multiplier !== 1) text += `, ×${policy.retry_multiplier}`;
  if (policy.retry_max_delay_ms) text += `, at most ${count(policy.retry_max_delay_ms)} ms`;
  return text;
}

// "queues" -> "queue": also the prefix of the view's element ids (queue-table, queue-detail).
export const singular = (kind) => KINDS[kind].noun;
