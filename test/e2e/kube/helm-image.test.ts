// The agent image the chart deploys (Dockerfile). No image can be built here (no container
// engine), so this checks everything around the build that can drift: the files it copies
// exist and are in the build context, the project's scripts it runs exist, the build stage
// installs what scripts/build-enforcer needs and copies every input it reads, Node is pinned
// and placed where bin/palisade looks, the runtime packages provide every shared library the
// addon and node link against, and the runtime stage's file layout, assembled from this
// clone as its COPY lines say, runs `palisade validate` and `palisade probe` (which loads
// the BPF objects through the addon).

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..", "..");

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

// Instructions with continuation lines joined and comments dropped; ARG defaults substituted.
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const lines = text.split("\n").filter((l) => !/^\s*#/.test(l));
  const joined = lines.join("\n").replace(/\\\n/g, " ");
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of joined.split("\n")) {
    const match = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const keyword = match[1]!;
    const rest = match[2]!.trim();
    if (keyword === "ARG") {
      const [name, value] = rest.split("=");
      if (value !== undefined) args.set(name!, value);
      continue;
    }
    if (keyword === "FROM") {
      const [from, as, name] = rest.split(/\s+/);
      stages.push({ from: from!, ...(as?.toUpperCase() === "AS" && { name }), instructions: [] });
      continue;
    }
    stages.at(-1)!.instructions.push({ keyword, args: rest });
  }
  const substitute = (s: string) => s.replace(/\$\{?([A-Z_]+)\}?/g, (all, name: string) => args.get(name) ?? all);
  for (const stage of stages) for (const i of stage.instructions) i.args = substitute(i.args);
  return { args, stages };
}

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}
function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === "COPY")
    .map((i) => {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
      const paths = words.filter((w) => !w.startsWith("--"));
      return { ...(from && { from }), sources: paths.slice(0, -1), dest: paths.at(-1)! };
    });
}

/** The Debian packages an `apt-get install` in this stage names. */
function aptPackages(stage: Stage): string[] {
  return stage.instructions
    .filter((i) => i.keyword === "RUN" && i.args.includes("apt-get install"))
    .flatMap((i) => i.args.split("apt-get install")[1]!.split("&&")[0]!.split(/\s+/))
    .filter((w) => w && !w.startsWith("-"));
}

/** A variable of scripts/lib/env.sh, as bash computes it (with extra environment). */
function envSh(name: string, env: Record<string, string> = {}): string {
  const result = spawnSync("bash", ["-c", `source scripts/lib/env.sh && printf %s "$${name}"`], { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...env } });
  expect(result.status, result.stderr).toBe(0);
  return result.stdout;
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, "Dockerfile"), "utf8"));
const [build, runtime] = dockerfile.stages as [Stage, Stage];
const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const scratch = mkdtempSync(join(tmpdir(), "palisade-image-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const nodeVersion = () => dockerfile.args.get("NODE_VERSION")!;
const imageCache = () => dockerfile.args.get("PALISADE_CACHE")!;

describe("the Dockerfile", () => {
  it("has a build stage and a runtime stage, both Debian bookworm (the addon links the libbpf it runs with)", () => {
    expect(dockerfile.stages).toHaveLength(2);
    expect(build.name).toBe("build");
    expect(build.from).toMatch(/bookworm/);
    expect(runtime.from).toMatch(/^debian:bookworm/);
    const entrypoint = runtime.instructions.find((i) => i.keyword === "ENTRYPOINT")!;
    expect(JSON.parse(entrypoint.args)).toEqual(["bin/palisade"]);
    expect(runtime.instructions.find((i) => i.keyword === "WORKDIR")?.args).toBe("/opt/palisade");
  });

  it("pins the Node version scripts/lib/env.sh pins, and puts node where bin/palisade runs it", () => {
    expect(nodeVersion()).toBe(envSh("PALISADE_NODE_VERSION"));
    const node = envSh("PALISADE_NODE", { PALISADE_CACHE: imageCache() });
    const nodeCopy = copies(runtime).find((c) => c.from === "build" && c.dest.endsWith("/bin/node"))!;
    expect(nodeCopy).toEqual({ from: "build", sources: [node], dest: node });
    for (const stage of [build, runtime]) expect(stage.instructions).toContainEqual({ keyword: "ENV", args: `PALISADE_CACHE=${imageCache()}` });
  });

  it("copies only files that exist and that .dockerignore leaves in the build context", () => {
    expect(ignored.every((p) => /^[\w.-]+$/.test(p)), "plain top-level names only (this check does not implement patterns)").toBe(true);
    const fromContext = [...copies(build), ...copies(runtime)].filter((c) => !c.from).flatMap((c) => c.sources);
    expect(fromContext.length).toBeGreaterThan(0);
    for (const source of fromContext) {
      expect(existsSync(join(ROOT, source)), `${source} exists`).toBe(true);
      expect(ignored, `${source} is in the build context`).not.toContain(source.split("/")[0]);
    }
  });

  it("runs the project's own scripts, and gives scripts/build-enforcer every input it reads", () => {
    const runs = build.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
    expect(runs).toContain("scripts/build-enforcer");
    for (const script of runs.flatMap((r) => r.match(/\bscripts\/[\w/.-]+/g) ?? [])) {
      expect(statSync(join(ROOT, script)).mode & 0o111, `${script} is an executable file`).not.toBe(0);
    }
    // What build-enforcer reads under the clone ($PALISADE_ROOT/...): copied, or made in the stage.
    const script = readFileSync(join(ROOT, "scripts", "build-enforcer"), "utf8");
    const reads = [...new Set([...script.matchAll(/\$PALISADE_ROOT\/([\w/.-]+)/g)].map((m) => m[1]!))];
    expect(reads).toEqual(expect.arrayContaining(["bpf/lsm", "src/enforcer/native"]));
    const copied = copies(build).flatMap((c) => c.sources);
    const madeInStage = ["build/", "node_modules/"]; // build-enforcer's output; npm ci
    for (const path of [...reads, "scripts/lib/env.sh"]) {
      const covered = [...copied, ...madeInStage].some((c) => `${path}/`.startsWith(c.endsWith("/") ? c : `${c}/`) || path === c);
      expect(covered, `the build stage provides ${path}`).toBe(true);
    }
  });

  it("installs in the build stage every Debian package scripts/lib/deps.sh lists for scripts/build-enforcer", () => {
    const deps = readFileSync(join(ROOT, "scripts", "lib", "deps.sh"), "utf8");
    const forBuild = [...deps.matchAll(/^\s+([\w.+-]+)\s+#\s*scripts\/build-enforcer/gm)].map((m) => m[1]!);
    expect(forBuild).toEqual(expect.arrayContaining(["clang-19", "libbpf-dev"]));
    // bpftool is listed for the VM tests, and build-enforcer uses it for vmlinux.h.
    expect(aptPackages(build)).toEqual(expect.arrayContaining([...forBuild, "bpftool"]));
  });

  it("installs in the runtime stage the packages of every shared library the addon and node link against", () => {
    const node = envSh("PALISADE_NODE");
    const runtimePackages = new Set([...aptPackages(runtime), "libc6", "libgcc-s1"]); // the last two are in every Debian image
    for (const binary of [join(ROOT, "build", "enforcer", "palisade_enforcer.node"), node]) {
      const ldd = spawnSync("ldd", [binary], { encoding: "utf8" });
      expect(ldd.status, `${binary} is built (scripts/setup)`).toBe(0);
      const libraries = [...ldd.stdout.matchAll(/=> (\/\S+)/g)].map((m) => m[1]!);
      expect(libraries.length).toBeGreaterThan(0);
      // One dpkg query for all: it knows a library by its /lib or its /usr/lib path (merged /usr).
      const variants = libraries.flatMap((l) => [l, l.replace(/^\/lib\//, "/usr/lib/"), l.replace(/^\/usr\/lib\//, "/lib/")]);
      const owners = new Map<string, string>();
      for (const line of spawnSync("dpkg", ["-S", ...new Set(variants)], { encoding: "utf8" }).stdout.split("\n")) {
        const m = /^([^:]+)(?::[^:]+)?: (\S+)$/.exec(line);
        if (m) owners.set(m[2]!.replace(/^\/usr\/lib\//, "/lib/"), m[1]!);
      }
      for (const library of libraries) {
        const pkg = owners.get(library.replace(/^\/usr\/lib\//, "/lib/"));
        expect(pkg, `a Debian package owns ${library}`).toBeDefined();
        expect(runtimePackages.has(pkg!), `${binary} needs ${library} from ${pkg}`).toBe(true);
      }
    }
  });

  it("lays out a runtime that runs: palisade validate and palisade probe from only what the runtime stage copies", () => {
    const app = join(scratch, "opt", "palisade");
    const cache = join(scratch, "cache");
    mkdirSync(app, { recursive: true });
    const workdir = "/opt/palisade";
    const into = (dest: string) => (dest.startsWith("/") ? dest : join(workdir, dest));
    for (const c of copies(runtime)) {
      for (const source of c.sources) {
        if (c.from === "build" && source.endsWith("/bin/node")) {
          // The node binary: from this machine's Node cache to the image's cache path, re-rooted.
          const target = join(cache, source.slice(imageCache().length));
          mkdirSync(dirname(target), { recursive: true });
          cpSync(envSh("PALISADE_NODE"), target);
          continue;
        }
        // Build-stage paths under /opt/palisade are this clone's (already built) files.
        const local = c.from === "build" ? join(ROOT, source.slice(workdir.length + 1)) : join(ROOT, source);
        const dest = join(scratch, into(c.dest));
        if (source.includes("*")) {
          const pattern = new RegExp(`^${source.split("/").at(-1)!.replace(/\./g, "\\.").replace(/\*/g, ".*")}$`);
          const matches = readdirSync(dirname(local)).filter((f) => pattern.test(f));
          expect(matches.length, `${source} matches files`).toBeGreaterThan(0);
          for (const f of matches) cpSync(join(dirname(local), f), join(dest, f));
        } else if (source.endsWith("node_modules")) {
          symlinkSync(local, join(dest.replace(/\/$/, ""))); // not pruned here: npm prune --omit=dev is not run
        } else if (statSync(local).isDirectory()) {
          cpSync(local, dest, { recursive: true });
        } else {
          mkdirSync(dest.endsWith("/") ? dest : dirname(dest), { recursive: true });
          cpSync(local, dest.endsWith("/") ? join(dest, source.split("/").at(-1)!) : dest);
        }
      }
    }
    expect(readdirSync(app).sort()).toEqual(["api", "bin", "build", "node_modules", "package.json", "policies", "scripts", "src"]);
    const env = { ...process.env, PALISADE_CACHE: cache, PATH: "/usr/bin:/bin:/usr/sbin:/sbin" };
    const policy = readdirSync(join(app, "policies")).find((f) => f.endsWith(".yaml") && !f.endsWith(".test.yaml"))!;
    const validate = spawnSync("bin/palisade", ["validate", `policies/${policy}`], { cwd: app, env, encoding: "utf8" });
    expect(validate.stderr).toBe("");
    expect(validate.status).toBe(0);
    const probe = spawnSync("bin/palisade", ["probe", "-o", "json"], { cwd: app, env, encoding: "utf8" });
    expect(probe.status, probe.stderr).toBe(0);
    const report = JSON.parse(probe.stdout) as { hooks: { hook: string }[] };
    expect(report.hooks.map((h) => h.hook).sort()).toEqual(["file.open", "net.connect", "process.exec"]);
  });
});
