// The `palisade` command line.

import { Command, Option } from "commander";
import { runCommand } from "./commands.ts";

const program = new Command("palisade")
  .description("Declarative runtime security: CEL policies compiled to BPF maps, enforced in the kernel")
  .showHelpAfterError()
  .configureOutput({ outputError: (text, write) => write(text) });

program
  .command("validate")
  .description("check policy files (schema, CEL types, kernel limits); exit 1 listing every error")
  .argument("<files...>", "policy files or directories")
  .addOption(new Option("-o, --output <format>", "output format").choices(["text", "json"]).default("text"))
  .action((files: string[], opts: { output: "text" | "json" }) => runCommand("validate", { files, ...opts }));

program
  .command("compile")
  .description("print the kernel plan: which map, which entries, which rule bits")
  .argument("<files...>", "policy files or directories")
  .addOption(new Option("-o, --output <format>", "output format").choices(["json", "yaml"]).default("json"))
  .action((files: string[], opts: { output: "json" | "yaml" }) => runCommand("compile", { files, ...opts }));

program
  .command("test")
  .description("run PolicyTest files (*.test.yaml): policies against recorded events with expected verdicts")
  .argument("[paths...]", "test files or directories searched for *.test.yaml", ["policies"])
  .addOption(new Option("-o, --output <format>", "output format").choices(["text", "json"]).default("text"))
  .action((paths: string[], opts: { output: "text" | "json" }) => runCommand("test", { paths, ...opts }));

program
  .command("import")
  .description("translate policies of other tools into Palisade policies")
  .command("tetragon")
  .description("translate a cilium.io/v1alpha1 TracingPolicy, refusing feature by feature what has no equivalent")
  .argument("<file>", "Tetragon policy YAML")
  .option("-o, --output <file>", "write the translated policies here instead of stdout")
  .action((file: string, opts: { output?: string }) => runCommand("import-tetragon", { file, ...opts }));

program
  .command("run")
  .description("the agent: enforce policies in the kernel, apply their changes, write events")
  .option("--policies <path>", "policy file or directory (repeatable)", (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option("--events-file <path>", "write events as JSON lines here (default stdout)")
  .option("--keep-attached", "leave the rules in force at exit, for an agent that restarts (e.g. an upgrade)")
  .option("--pin-dir <path>", "bpffs directory for pinned programs and maps", "/sys/fs/bpf/palisade")
  .option("--kubernetes", "take policies from the cluster's TracingPolicy objects instead of files (KUBECONFIG or in-cluster config)")
  .option("--kubeconfig <path>", "with --kubernetes: this kubeconfig instead of KUBECONFIG or the in-cluster service account")
  .option("--node <name>", "with --kubernetes: this node's name (default $NODE_NAME, else the host name)")
  .option("--cgroup-root <path>", "with --kubernetes: the cgroup v2 directory holding kubepods (default: where cgroup2 is mounted)")
  .option("--status-namespace <name>", "with --kubernetes: namespace of the heartbeat and status-aggregator Leases (default $POD_NAMESPACE, else palisade-system)")
  .addOption(new Option("--report-format <format>", "with --kubernetes: PolicyReports as wgpolicyk8s.io/v1alpha2 or OpenReports (openreports.io/v1alpha1)").choices(["wgpolicyk8s", "openreports"]).default("wgpolicyk8s"))
  .option("--metrics-address <host:port>", "serve Prometheus metrics at http://<host:port>/metrics", "127.0.0.1:9464")
  .option("--no-metrics", "no metrics endpoint")
  .option("--observe-socket <path>", "unix socket (root only) that `palisade observe` reads", "/run/palisade/observe.sock")
  .option("--no-observe", "no observe stream")
  .action((opts: { policies: string[]; eventsFile?: string; keepAttached?: boolean; pinDir: string; kubernetes?: boolean; kubeconfig?: string; node?: string; cgroupRoot?: string; statusNamespace?: string; reportFormat: string }) => {
    if (opts.kubernetes && opts.policies.length) program.error("--kubernetes and --policies exclude each other: policies come from the cluster or from files");
    runCommand("run", { ...opts, policies: opts.policies.length ? opts.policies : ["policies"] });
  });

program
  .command("status")
  .description("the cluster's policies (Ready, Reconciling, Degraded, node counts) and nodes; exit 1 unless every policy is Ready")
  .option("--kubeconfig <path>", "this kubeconfig instead of KUBECONFIG or the in-cluster service account")
  .option("--namespace <name>", "namespace of the agents' heartbeat Leases (default $POD_NAMESPACE, else palisade-system)")
  .addOption(new Option("-o, --output <format>", "output format").choices(["text", "json"]).default("text"))
  .action((opts: { kubeconfig?: string; namespace?: string; output: "text" | "json" }) => runCommand("status", opts));

program
  .command("observe")
  .description("stream a running agent's events live")
  .option("--socket <path>", "the agent's observe socket", "/run/palisade/observe.sock")
  .addOption(new Option("-o, --output <format>", "json: the event format of JSON lines; compact: one line a person reads").choices(["compact", "json"]).default("compact"))
  .option("--filter <cel>", `only events this CEL expression is true for, e.g. 'action == "killed" && k8s.namespace == "prod"'`)
  .option("--since <duration>", "first replay what the agent kept from this long ago (e.g. 30s, 5m, 1h)")
  .option("--reconnect", "keep going across agent restarts, resuming after the last event printed")
  .action((opts: { socket: string; output: "compact" | "json"; filter?: string; since?: string; reconnect?: boolean }) => runCommand("observe", opts));

program
  .command("probe")
  .description("what this kernel can enforce, per hook: the backend chosen by trying, and its actions")
  .addOption(new Option("-o, --output <format>", "output format").choices(["text", "json"]).default("text"))
  .action((opts: { output: "text" | "json" }) => runCommand("probe", opts));

await program.parseAsync();
