// The status plane: each agent publishes its node's state (NodeStatePublisher), and the one
// agent holding the aggregator Lease folds all nodes' states into every policy's /status
// (startStatusAggregator). See docs/status.md.

export { NodeStatePublisher, type NodeStatePublisherOptions } from "./publisher.ts";
export { startStatusAggregator, DEFAULT_LEASE_NAME, type StatusAggregator, type StatusAggregatorOptions } from "./aggregator.ts";
export type { Condition, PolicyStatus } from "./aggregation.ts";
