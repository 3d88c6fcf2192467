// `scripts/bench`: every benchmark, printed as the Markdown that goes into BENCHMARKS.md.

import { cpus } from "node:os";
import { benchPolicyChange } from "./agent.ts";
import { benchApply } from "./apply.ts";
import { benchCompile } from "./compile.ts";
import { benchKernel } from "./kernel.ts";
import { benchKubeApply } from "./kube-apply.ts";
import { benchOtel } from "./otel.ts";
import { benchOtelCost } from "./otel-cost.ts";
import { benchOtelAgent } from "./otel-agent.ts";
import { benchReports } from "./reports.ts";
import { benchStatusScale } from "./status-scale.ts";

console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${new Date().toISOString()}\n`);
console.log("## Compile time\n");
console.log(benchCompile());
console.log("\n## Kernel cost per call\n");
console.log(benchKernel({ log: (line) => console.error(line) }));
console.log("\n## Policy change to enforcement\n");
console.log(await benchPolicyChange());
console.log("\nThe enforcer's share (bench/apply.ts):\n");
console.log(benchApply());
console.log("\n## Kubernetes: kubectl apply to enforcement\n");
console.log(await benchKubeApply());
console.log("\n## Kubernetes: policy status at scale\n");
console.log(await benchStatusScale());
console.log("\n## PolicyReports\n");
console.log(await benchReports());
console.log("\n## OpenTelemetry export\n");
console.log(benchOtel());
console.log("\n## OpenTelemetry export: CPU per event, stage by stage\n");
console.log(benchOtelCost());
console.log("\n## OpenTelemetry export: the whole agent, ring buffer to collector\n");
console.log(await benchOtelAgent());
