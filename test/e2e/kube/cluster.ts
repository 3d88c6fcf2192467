// A real Kubernetes control plane for the e2e tests: etcd and kube-apiserver, built from
// upstream by test/e2e/kube/build, started on 127.0.0.1 with free ports and a temporary
// data directory. There is no kubelet, scheduler, controller manager or container runtime:
// objects (Pods included) are only stored and served. See README.md next to this file.

import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { open, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { createServer } from "node:net";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";

const HERE = import.meta.dirname;

export interface Binaries {
  kubeVersion: string;
  kubeApiServer: string;
  kubectl: string;
  etcdVersion: string;
  etcd: string;
  helmVersion?: string;
  helm?: string;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (for `-f -`). */
  input?: string;
  /** Run as someone else: a path from makeUserKubeconfig(). Default: the admin. */
  kubeconfig?: string;
  /** Reject when kubectl exits non-zero (default true). With false, look at `code`. */
  check?: boolean;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Cluster {
  /** Path of an admin kubeconfig (client certificate in group system:masters). */
  kubeconfig: string;
  /** The apiserver's URL, https://127.0.0.1:<port>. */
  server: string;
  /** PEM of the CA that signed the serving and client certificates. */
  caFile: string;
  /** The temporary directory holding certificates, etcd's data and the logs. */
  dir: string;
  binaries: Binaries;
  /** Milliseconds from startCluster() (binaries already built) to /readyz ok. */
  startMillis: number;
  kubectl(args: string[], options?: KubectlOptions): Promise<KubectlResult>;
  /** A kubeconfig for `user` in `groups`, with no permissions unless RBAC grants some. */
  makeUserKubeconfig(user: string, groups?: string[]): Promise<string>;
  /** A kubeconfig holding a token of ServiceAccount `namespace/name` (TokenRequest, one
   *  hour), as the kubelet would project it into a pod: the account's RBAC, nothing more. */
  makeServiceAccountKubeconfig(namespace: string, name: string): Promise<string>;
  /** Stops the apiserver (SIGTERM, or SIGKILL for a crash) and starts it again on the
   *  same port with the same etcd: clients see the connection drop and watches end. */
  restartApiServer(options?: { signal?: "SIGTERM" | "SIGKILL" }): Promise<void>;
  /** Kills everything and removes the directory. Idempotent. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra kube-apiserver flags, after ours (a later flag wins). */
  apiServerArgs?: string[];
  /** How long to wait for /readyz, in milliseconds (default 90 s). */
  readyTimeoutMillis?: number;
}

// ---------------------------------------------------------------------------------------
// Binaries

let built: Promise<Binaries> | undefined;
let builtWithHelm: Promise<Binaries> | undefined;

/**
 * Builds (or finds in the cache) kube-apiserver, kubectl and etcd, and helm too when asked.
 * A cold build takes many minutes; a warm one well under a second. Rejects with the
 * build's own explanation (no Go toolchain, a failed compile): never skips.
 */
export function ensureBinaries(options: { helm?: boolean } = {}): Promise<Binaries> {
  if (options.helm) return (builtWithHelm ??= runBuild(["--helm"]));
  return (built ??= builtWithHelm ?? runBuild([]));
}

async function runBuild(args: string[]): Promise<Binaries> {
  const script = join(HERE, "build");
  // The build's progress goes to our stderr as it happens: a cold build is long.
  const child = spawn(script, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    process.stderr.write(chunk);
  });
  const code = await exitOf(child);
  if (code !== 0) {
    throw new Error(`test/e2e/kube/build failed (exit ${code}); the Kubernetes e2e tests need it:\n${tail(stderr, 40)}`);
  }
  const vars = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) vars.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const need = (name: string): string => {
    const value = vars.get(name);
    if (!value) throw new Error(`test/e2e/kube/build printed no ${name}:\n${stdout}`);
    return value;
  };
  const binaries: Binaries = {
    kubeVersion: need("KUBE_VERSION"),
    kubeApiServer: need("KUBE_APISERVER"),
    kubectl: need("KUBECTL"),
    etcdVersion: need("ETCD_VERSION"),
    etcd: need("ETCD"),
  };
  if (vars.has("HELM")) {
    binaries.helm = need("HELM");
    binaries.helmVersion = need("HELM_VERSION");
  }
  return binaries;
}

// ---------------------------------------------------------------------------------------
// Processes

// Every live cluster, so that an exiting test process leaves no server behind.
const live = new Set<{ pids: () => number[]; dir: string }>();
let exitHookInstalled = false;

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const cluster of live) {
      for (const pid of cluster.pids()) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      if (!keepDirs()) rmSync(cluster.dir, { recursive: true, force: true });
    }
  });
}

const keepDirs = () => process.env.PALISADE_KEEP_CLUSTER === "1";

// A server process, started through `setpriv --pdeathsig SIGKILL` so the kernel kills it
// when the process that started it dies, however it dies (a crashed or killed test
// worker included): no orphaned etcd or apiserver.
class Server {
  private child: ChildProcess | undefined;
  private exited: Promise<number> | undefined;
  private exitCode: number | undefined;

  readonly name: string;
  readonly logFile: string;
  private readonly command: string;
  private readonly args: string[];

  constructor(name: string, command: string, args: string[], logFile: string) {
    this.name = name;
    this.command = command;
    this.args = args;
    this.logFile = logFile;
  }

  async start() {
    const log = await open(this.logFile, "a");
    try {
      const child = spawn("setpriv", ["--pdeathsig", "SIGKILL", "--", this.command, ...this.args], {
        stdio: ["ignore", log.fd, log.fd],
        env: serverEnv(),
      });
      this.child = child;
      this.exitCode = undefined;
      this.exited = exitOf(child).then((code) => (this.exitCode = code));
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", resolve);
        child.once("error", (err) => reject(new Error(`cannot start ${this.name} (setpriv ${this.command}): ${err.message}`)));
      });
    } finally {
      await log.close();
    }
  }

  get pid(): number | undefined {
    return this.child && this.exitCode === undefined ? this.child.pid : undefined;
  }

  /** Throws, with the end of its log, if the process has ended. */
  async checkRunning() {
    if (this.exitCode === undefined) return;
    throw new Error(`${this.name} exited (${this.exitCode}) while starting; the end of its log (PALISADE_KEEP_CLUSTER=1 keeps ${this.logFile}):\n${tail(await readLog(this.logFile), 30)}`);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM", graceMillis = 10_000) {
    const child = this.child;
    const exited = this.exited;
    if (!child || !exited) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMillis);
      await exited;
      clearTimeout(timer);
    }
  }
}

// The caller's KUBECONFIG must never leak into our servers or kubectl: every command
// names its kubeconfig explicitly. (Go never proxies loopback addresses, so the proxy
// variables can stay.)
function serverEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.KUBECONFIG;
  return env;
}

function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once("error", () => resolve(127));
    child.once("exit", (code, signal) => resolve(code ?? 128 + (signal ? signalNumber(signal) : 0)));
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 0;
}

function run(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<KubectlResult> {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"], env: options.env ?? process.env });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  child.stdin.on("error", () => {}); // a command that exits without reading its input
  child.stdin.end(options.input ?? "");
  return new Promise((resolve, reject) => {
    child.once("error", (err) => reject(new Error(`cannot run ${command}: ${err.message}`)));
    child.once("close", (code, signal) => resolve({ code: code ?? 128 + (signal ? signalNumber(signal) : 0), stdout, stderr }));
  });
}

async function readLog(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch {
    return "(no log)";
  }
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Free TCP ports on 127.0.0.1, all distinct (each is held until all are found). */
async function freePorts(count: number): Promise<number[]> {
  const servers = [];
  try {
    const ports = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", resolve);
      });
      const address = server.address();
      if (!address || typeof address === "string") throw new Error("no port from listen(0)");
      ports.push(address.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

// ---------------------------------------------------------------------------------------
// Certificates: one throw-away CA signs the serving certificate and every client
// certificate. openssl (Debian's) makes them; ECDSA P-256 keys are instant to generate.

async function openssl(args: string[]) {
  const result = await run("openssl", args);
  if (result.code !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${result.stderr}`);
}

// A subject for `openssl req -subj`: / and the other separators escaped.
function subject(parts: [string, string][]): string {
  return parts.map(([key, value]) => `/${key}=${value.replace(/[\\/+=,]/g, (c) => `\\${c}`)}`).join("");
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function makeCa(dir: string) {
  await openssl([
    "req", "-x509", ...EC, "-days", "7", "-subj", "/CN=palisade-e2e-ca",
    "-keyout", join(dir, "ca.key"), "-out", join(dir, "ca.crt"),
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

async function makeLeaf(dir: string, name: string, subj: string, extensions: string[]) {
  await openssl([
    "req", "-x509", ...EC, "-days", "7", "-subj", subj,
    "-CA", join(dir, "ca.crt"), "-CAkey", join(dir, "ca.key"),
    "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.crt`),
    "-addext", "basicConstraints=critical,CA:FALSE",
    "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
    ...extensions.flatMap((e) => ["-addext", e]),
  ]);
}

async function makeClientCert(dir: string, name: string, user: string, groups: string[]) {
  const subj = subject([...groups.map((g): [string, string] => ["O", g]), ["CN", user]]);
  await makeLeaf(dir, name, subj, ["extendedKeyUsage=clientAuth"]);
}

async function writeKubeconfig(file: string, server: string, dir: string, name: string, user: string) {
  const b64 = async (f: string) => (await readFile(join(dir, f))).toString("base64");
  // Everything inline: the file alone is enough for kubectl or a client library.
  const text = [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: palisade-e2e",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority-data: ${await b64("ca.crt")}`,
    "users:",
    `- name: ${JSON.stringify(user)}`,
    "  user:",
    `    client-certificate-data: ${await b64(`${name}.crt`)}`,
    `    client-key-data: ${await b64(`${name}.key`)}`,
    "contexts:",
    "- name: palisade-e2e",
    "  context:",
    "    cluster: palisade-e2e",
    `    user: ${JSON.stringify(user)}`,
    "current-context: palisade-e2e",
    "",
  ].join("\n");
  await writeFile(file, text, { mode: 0o600 });
}

// ---------------------------------------------------------------------------------------
// The cluster

const DIR_PREFIX = "palisade-kube-";

// Directories of clusters whose test process died without cleaning up (SIGKILL, OOM).
function removeStaleDirs() {
  for (const entry of readdirSync(tmpdir())) {
    const match = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(entry);
    if (!match) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || existsSync(`/proc/${pid}`)) continue;
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

export async function startCluster(options: StartOptions = {}): Promise<Cluster> {
  const binaries = await ensureBinaries();
  removeStaleDirs();
  // A free port can be taken by another process between our probe and the server's
  // bind (parallel test files start clusters too): then start again on new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binaries, options);
    } catch (err) {
      if (attempt >= 3 || !/address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startOnce(binaries: Binaries, options: StartOptions): Promise<Cluster> {
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  const servers: Server[] = [];
  const entry = { pids: () => servers.flatMap((s) => (s.pid ? [s.pid] : [])), dir };
  live.add(entry);
  installExitHook();

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // The apiserver first: it would log etcd errors while shutting down otherwise.
    for (const server of [...servers].reverse()) await server.stop("SIGTERM", 5_000);
    live.delete(entry);
    if (!keepDirs()) await rm(dir, { recursive: true, force: true });
  };

  try {
    const [etcdClientPort, etcdPeerPort, apiPort] = (await freePorts(3)) as [number, number, number];
    const server = `https://127.0.0.1:${apiPort}`;

    const saKeys = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await Promise.all([
      writeFile(join(dir, "sa.key"), saKeys.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 }),
      writeFile(join(dir, "sa.pub"), saKeys.publicKey.export({ type: "spki", format: "pem" })),
      makeCa(dir),
    ]);
    await Promise.all([
      makeLeaf(dir, "apiserver", "/CN=kube-apiserver", [
        "extendedKeyUsage=serverAuth",
        // The names in-cluster clients use, and the service network's first address.
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default," +
          "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
      ]),
      makeClientCert(dir, "admin", "palisade-e2e-admin", ["system:masters"]),
    ]);
    const kubeconfig = join(dir, "admin.kubeconfig");
    await writeKubeconfig(kubeconfig, server, dir, "admin", "palisade-e2e-admin");

    const peer = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = new Server("etcd", binaries.etcd, [
      "--name=palisade-e2e",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClientPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClientPort}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=palisade-e2e=${peer}`,
      "--log-level=warn",
      // A throw-away store: durability across a power cut buys nothing, fsyncs cost time.
      "--unsafe-no-fsync",
    ], join(dir, "etcd.log"));
    servers.push(etcd);

    const apiArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClientPort}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      // A loopback-only machine: no default route to take an address from, and no
      // kubernetes Service endpoints to reconcile.
      "--advertise-address=127.0.0.1",
      "--endpoint-reconciler-type=none",
      "--service-cluster-ip-range=10.96.0.0/16",
      `--tls-cert-file=${join(dir, "apiserver.crt")}`,
      `--tls-private-key-file=${join(dir, "apiserver.key")}`,
      `--client-ca-file=${join(dir, "ca.crt")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${join(dir, "sa.pub")}`,
      `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      "--authorization-mode=Node,RBAC",
      // The agent's DaemonSet Pods are privileged: their objects must be accepted.
      "--allow-privileged=true",
      "--profiling=false",
      ...(options.apiServerArgs ?? []),
    ];
    const apiserver = new Server("kube-apiserver", binaries.kubeApiServer, apiArgs, join(dir, "apiserver.log"));
    servers.push(apiserver);

    const tls = {
      ca: await readFile(join(dir, "ca.crt")),
      cert: await readFile(join(dir, "admin.crt")),
      key: await readFile(join(dir, "admin.key")),
    };
    const readyTimeout = options.readyTimeoutMillis ?? 90_000;
    const waitReady = () => waitForReadyz(apiPort, tls, readyTimeout, apiserver, [etcd, apiserver]);

    // Both at once: the apiserver retries etcd until it answers.
    await etcd.start();
    await apiserver.start();
    await waitReady();
    const startMillis = Math.round(performance.now() - started);

    const kubeCacheDir = join(dir, "kubectl-cache");
    const kubectl = async (args: string[], opts: KubectlOptions = {}): Promise<KubectlResult> => {
      const env = { ...serverEnv(), KUBECACHEDIR: kubeCacheDir };
      const result = await run(binaries.kubectl, ["--kubeconfig", opts.kubeconfig ?? kubeconfig, ...args], {
        env,
        ...(opts.input === undefined ? {} : { input: opts.input }),
      });
      if ((opts.check ?? true) && result.code !== 0) {
        throw new Error(`kubectl ${args.join(" ")} exited ${result.code}:\n${result.stderr}${result.stdout}`);
      }
      return result;
    };

    let users = 0;
    const makeUserKubeconfig = async (user: string, groups: string[] = []) => {
      const name = `user-${++users}`;
      await makeClientCert(dir, name, user, groups);
      const file = join(dir, `${name}.kubeconfig`);
      await writeKubeconfig(file, server, dir, name, user);
      return file;
    };

    const makeServiceAccountKubeconfig = async (namespace: string, name: string) => {
      const token = (await kubectl(["-n", namespace, "create", "token", name, "--duration=1h"])).stdout.trim();
      const file = join(dir, `sa-${++users}.kubeconfig`);
      await writeFile(file, JSON.stringify({
        apiVersion: "v1", kind: "Config", "current-context": "sa",
        clusters: [{ name: "palisade-e2e", cluster: { server, "certificate-authority": join(dir, "ca.crt") } }],
        users: [{ name: "sa", user: { token } }],
        contexts: [{ name: "sa", context: { cluster: "palisade-e2e", user: "sa" } }],
      }), { mode: 0o600 });
      return file;
    };

    const restartApiServer = async (opts: { signal?: "SIGTERM" | "SIGKILL" } = {}) => {
      await apiserver.stop(opts.signal ?? "SIGTERM");
      await apiserver.start();
      await waitReady();
    };

    return { kubeconfig, server, caFile: join(dir, "ca.crt"), dir, binaries, startMillis, kubectl, makeUserKubeconfig, makeServiceAccountKubeconfig, restartApiServer, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForReadyz(port: number, tls: TlsFiles, timeoutMillis: number, apiserver: Server, servers: Server[]) {
  const deadline = Date.now() + timeoutMillis;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    for (const server of servers) await server.checkRunning();
    try {
      const { status, body } = await get(port, "/readyz", tls);
      if (status === 200 && body.trim() === "ok") return;
      last = `HTTP ${status}: ${tail(body, 5)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `kube-apiserver on 127.0.0.1:${port} was not ready within ${timeoutMillis / 1000} s (last /readyz: ${last}); the end of its log (PALISADE_KEEP_CLUSTER=1 keeps ${apiserver.logFile}):\n${tail(await readLog(apiserver.logFile), 30)}`,
  );
}

interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function get(port: number, path: string, tls: TlsFiles): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "GET", ...tls, timeout: 5_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}
