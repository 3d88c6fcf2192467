// `npm run bench`: every benchmark, printed as the Markdown that goes into BENCHMARKS.md.

import { cpus } from "node:os";
import { benchCompile } from "./compile.ts";
import { benchKernel } from "./kernel.ts";

console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${new Date().toISOString()}\n`);
console.log("## Compile time\n");
console.log(benchCompile());
console.log("\n## Kernel cost per call\n");
console.log(benchKernel({ log: (line) => console.error(line) }));
