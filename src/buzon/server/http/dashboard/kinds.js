// What differs between queues and channels: the noun, extra table columns, detail facts.
import { count, perSecond } from "./format.js";

export const KINDS = {
  queues: {
    noun: "queue",
    columns: [
      { title: "Depth", num: true, key: "depth", cell: (d) => count(d.depth) },
      { title: "In flight", num: true, key: "in-flight", cell: (d) => count(d.in_flight) },
      { title: "Consumers", num: true, key: "consumers", cell: (d) => count(d.consumers) },
    ],
    facts: (d) => [
      ["Depth", count(d.depth), "depth"],
      ["In flight", count(d.in_flight), "in-flight"],
      ["Consumers", count(d.consumers), "consumers"],
      ["In / s", perSecond(d.rates.published_per_s), "in"],
      ["Out / s", perSecond(d.rates.delivered_per_s), "out"],
      ["Owner", d.owner || "(deleted user)", "owner"],
      ["Durable", d.policy.durable ? "yes" : "no", "durable"],
    ],
  },
  channels: {
    noun: "channel",
    columns: [
      { title: "Subscribers", num: true, key: "subscribers", cell: (d) => count(d.subscribers) },
      {
        title: "Durable subs",
        num: true,
        key: "durables",
        cell: (d) => count(d.durable_subscriptions.length),
      },
    ],
    facts: (d) => [
      ["Subscribers", count(d.subscribers), "subscribers"],
      ["In / s", perSecond(d.rates.published_per_s), "in"],
      ["Out / s", perSecond(d.rates.delivered_per_s), "out"],
      ["Owner", d.owner || "(deleted user)", "owner"],
    ],
  },
};

// "queues" -> "queue": also the prefix of the view's element ids (queue-table, queue-detail).
export const singular = (kind) => KINDS[kind].noun;
