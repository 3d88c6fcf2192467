// What each CLI command does. Exit codes: 0 success, 1 the input is wrong (invalid
// policies, failing tests), 2 the command could not run (missing file, bad usage).

import { readFileSync, writeFileSync } from "node:fs";
import { stringify as toYaml } from "yaml";
import { formatDiagnostic, type Diagnostic } from "../diagnostics.ts";
import { expandPaths, loadAndCompile, POLICY_TEST_SUFFIX } from "../source/files.ts";
import { formatExpectation, runPolicyTest } from "../policytest/index.ts";
import { importTetragon } from "../importer/tetragon.ts";
import { startAgent } from "../agent/index.ts";
import { describeActions, probe } from "../enforcer/index.ts";
import { parseListenAddress } from "../metrics/server.ts";
import { observe as observeEvents, parseDuration } from "../observe/client.ts";

type Args = Record<string, any>;

const out = (text: string) => process.stdout.write(text.endsWith("\n") ? text : text + "\n");
const err = (text: string) => process.stderr.write(text.endsWith("\n") ? text : text + "\n");

function reportDiagnostics(diagnostics: Diagnostic[], format: string): void {
  if (format === "json") out(JSON.stringify({ valid: false, errors: diagnostics }, null, 2));
  else {
    for (const d of diagnostics) err(formatDiagnostic(d));
    err(`${diagnostics.length} error${diagnostics.length === 1 ? "" : "s"}`);
  }
}

const commands: Record<string, (args: Args) => number | Promise<number>> = {
  validate({ files, output }) {
    const { plan, diagnostics, ...loaded } = loadAndCompile(files);
    if (!plan) {
      reportDiagnostics(diagnostics, output);
      return 1;
    }
    const rules = loaded.policies.reduce((n, p) => n + p.rules.length, 0);
    if (output === "json") out(JSON.stringify({ valid: true, files: loaded.files.length, policies: loaded.policies.length, rules, errors: [] }, null, 2));
    else out(`valid: ${loaded.policies.length} polic${loaded.policies.length === 1 ? "y" : "ies"}, ${rules} rule${rules === 1 ? "" : "s"} in ${loaded.files.length} file${loaded.files.length === 1 ? "" : "s"}`);
    return 0;
  },

  compile({ files, output }) {
    const { plan, diagnostics } = loadAndCompile(files);
    if (!plan) {
      reportDiagnostics(diagnostics, "text");
      return 1;
    }
    out(output === "yaml" ? toYaml(plan) : JSON.stringify(plan, null, 2));
    return 0;
  },

  test({ paths, output }) {
    const testFiles = expandPaths(paths, (name) => name.endsWith(POLICY_TEST_SUFFIX));
    if (!testFiles.length) {
      err(`no PolicyTest files (*${POLICY_TEST_SUFFIX}) under ${paths.join(", ")}`);
      return 2;
    }
    const results = testFiles.map((f) => runPolicyTest(f));
    if (output === "json") out(JSON.stringify(results, null, 2));
    else {
      for (const r of results) {
        const failed = r.events.filter((e) => !e.pass);
        out(`${r.pass ? "PASS" : "FAIL"} ${r.name} (${r.file}): ${r.events.length - failed.length}/${r.events.length} events as expected`);
        for (const d of r.errors) out(`  ${formatDiagnostic(d)}`);
        for (const e of failed) {
          out(`  ${e.where}: ${e.summary}`);
          out(`    expected: ${formatExpectation(e.expected)}`);
          out(`    got:      ${formatExpectation(e.got)}`);
        }
      }
      const passed = results.filter((r) => r.pass).length;
      out(`${passed} of ${results.length} policy tests passed`);
    }
    return results.every((r) => r.pass) ? 0 : 1;
  },

  "import-tetragon"({ file, output }) {
    const result = importTetragon(file, readFileSync(file, "utf8"));
    for (const d of result.warnings) err(formatDiagnostic(d).replace(": error", ": warning"));
    for (const d of result.refusals) err(formatDiagnostic(d).replace(": error", ": not imported"));
    if (result.policies > 0) {
      if (output) writeFileSync(output, result.yaml);
      else out(result.yaml);
    }
    err(`imported ${result.policies} polic${result.policies === 1 ? "y" : "ies"}; ${result.refusals.length} feature${result.refusals.length === 1 ? "" : "s"} not imported`);
    return result.policies > 0 ? 0 : 1;
  },

  // The Kubernetes modules (and @kubernetes/client-node, ~50 MiB of heap) load only when asked for.
  async run({ policies, eventsFile, keepAttached, pinDir, kubernetes, kubeconfig, node, cgroupRoot, statusNamespace, reportFormat, metrics, metricsAddress, observe, observeSocket }) {
    if (metrics) parseListenAddress(metricsAddress); // a typo stops the agent at start, not later in a log line
    const outputs = { metricsAddress: metrics && metricsAddress, observeSocket: observe && observeSocket };
    if (!kubernetes) {
      startAgent({ policies, eventsFile, keepAttached, pinDir, ...outputs });
      return 0;
    }
    const { startKubernetesAgent } = await import("../controller/index.ts");
    const agent = startKubernetesAgent({ eventsFile, keepAttached, pinDir, kubeconfig, node, cgroupRoot, statusNamespace, reportFormat, ...outputs });
    agent.ready.catch(() => {
      process.exitCode = 2;
      void agent.stop();
    });
    return 0;
  },

  async status({ kubeconfig, namespace, output }) {
    const { formatClusterStatus, isReady, readClusterStatus } = await import("../controller/status/report.ts");
    const status = await readClusterStatus({ kubeconfig, namespace });
    out(output === "json" ? JSON.stringify(status, null, 2) : formatClusterStatus(status));
    return status.policies.every(isReady) ? 0 : 1;
  },

  observe({ socket, output, filter, since, reconnect }) {
    return observeEvents({ socket, output, filter, reconnect, ...(since && { sinceMillis: parseDuration(since) }) });
  },

  probe({ output }) {
    const result = probe();
    if (output === "json") out(JSON.stringify(result, null, 2));
    else {
      out(`kernel ${result.kernel}${result.lsms ? `; active LSMs: ${result.lsms.join(",")}` : ""}`);
      if (result.problem) out(`cannot enforce: ${result.problem}`);
      for (const h of result.hooks) {
        const can = describeActions(h);
        out(`${h.hook.padEnd(13)} ${(h.selected ?? "none").padEnd(11)} can: ${can}${h.how ? ` (${h.how})` : ""}`);
        for (const note of h.notes) out(`${"".padEnd(14)}- ${note}`);
        for (const blind of h.cannotSee) out(`${"".padEnd(14)}- limit: ${blind}`);
      }
    }
    return result.problem ? 1 : 0;
  },
};

export function runCommand(name: string, args: Args): void {
  const failed = (e: unknown) => {
    const error = e as NodeJS.ErrnoException;
    err(`palisade: ${error.code === "ENOENT" ? `no such file or directory: ${error.path}` : error.message}`);
    return 2;
  };
  let code: number | Promise<number>;
  try {
    code = commands[name]!(args);
  } catch (e) {
    code = failed(e);
  }
  if (typeof code === "number") process.exitCode = code;
  else code.then((c) => (process.exitCode = c), (e) => (process.exitCode = failed(e)));
}
