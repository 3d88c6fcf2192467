// PolicyReporter refuses settings that would break its guarantees, when it is created.

import { KubeConfig } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { PolicyReporter, type PolicyReporterOptions } from "../../src/controller/reports/index.ts";

const kubeConfig = new KubeConfig();
kubeConfig.loadFromOptions({ clusters: [{ name: "c", server: "https://127.0.0.1:1" }], users: [{ name: "u" }], contexts: [{ name: "x", cluster: "c", user: "u" }], currentContext: "x" });
const make = (options: Partial<PolicyReporterOptions>) => () => new PolicyReporter({ kubeConfig, node: "n", flushIntervalMs: 0, ...options });

describe("PolicyReporter options", () => {
  it("refuses a bound, byte budget or interval that is not a sane integer", () => {
    expect(make({ maxResultsPerReport: 0 })).toThrow("maxResultsPerReport must be an integer from 1 to 10000, not 0");
    expect(make({ maxResultsPerReport: 2.5 })).toThrow("maxResultsPerReport must be an integer");
    expect(make({ maxReportBytes: 2 * 1024 * 1024 })).toThrow("maxReportBytes must be an integer from 16384 to 1048576, not 2097152");
    expect(make({ flushIntervalMs: -1 })).toThrow("flushIntervalMs must be an integer from 0 to 3600000, not -1");
    expect(make({ flavor: "kyverno" as never })).toThrow("report format must be wgpolicyk8s or openreports, not kyverno");
    expect(make({})).not.toThrow();
  });

  it("records nothing once closed, and a close with nothing pending writes nothing", async () => {
    const reporter = make({})();
    await reporter.close();
    reporter.record({ hook: "process.exec", action: "killed", policy: "p", rule: "r", process: { pid: 1, uid: 0, binary: "/bin/sh" } });
    await reporter.flush();
    expect(reporter.stats).toEqual({ recorded: 0, dropped: 0, writes: 0, writeErrors: 0 });
  });
});
