import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PolicySource } from "../../src/source/watch.ts";
import { TRACEPOINT_CAPABILITIES } from "../../src/enforcer/encode.ts";

const policy = (name: string, binary: string, action = "kill") =>
  `apiVersion: palisade.dev/v1alpha1\nkind: TracingPolicy\nmetadata: {name: ${name}}\nspec:\n  rules:\n    - {name: r, hook: process.exec, match: 'process.binary == "${binary}"', action: ${action}}\n`;
const rules = (s: PolicySource) => s.current!.hooks[0]!.slots.map((x) => s.current!.policies[x.policy]!.name);

let sources: PolicySource[] = [];
afterEach(() => {
  sources.forEach((s) => s.close());
  sources = [];
});

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "palisade-src-"));
  const source = new PolicySource([dir]);
  sources.push(source);
  return { dir, source };
}

describe("PolicySource", () => {
  it("loads every file, and reloads only when something changed", () => {
    const { dir, source } = setup();
    writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a"));
    writeFileSync(join(dir, "b.yaml"), policy("b", "/bin/b"));
    expect(source.reload().update?.changed.sort()).toEqual([join(dir, "a.yaml"), join(dir, "b.yaml")]);
    expect(rules(source)).toEqual(["a", "b"]);
    expect(source.reload()).toEqual({});
  });

  it("keeps a bad file's last good version in force and updates the others", () => {
    const { dir, source } = setup();
    writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a"));
    writeFileSync(join(dir, "b.yaml"), policy("b", "/bin/b"));
    source.reload();
    const before = source.current!;
    writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a").replace("action: kill", "action: block"));
    writeFileSync(join(dir, "b.yaml"), policy("b", "/bin/b2"));
    const { update, rejection } = source.reload();
    expect(rejection?.files).toEqual([join(dir, "a.yaml")]);
    expect(rejection?.diagnostics.map((d) => `${d.line}:${d.column} ${d.message}`)).toEqual(['6:82 invalid value "block", expected one of: deny, kill, audit']);
    expect(update?.plan.digest).not.toBe(before.digest);
    const binaries = update!.plan.hooks[0]!.dimensions[0]!.entries.map((e) => "text" in e && e.text);
    expect(binaries).toEqual(["/bin/a", "/bin/b2"]);
  });

  it("a file that only fails when compiled (what this kernel can do) keeps its last good version; the others update", () => {
    const dir = mkdtempSync(join(tmpdir(), "palisade-src-"));
    const source = new PolicySource([dir], { capabilities: TRACEPOINT_CAPABILITIES });
    sources.push(source);
    writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a"));
    writeFileSync(join(dir, "b.yaml"), policy("b", "/bin/b"));
    source.reload();
    // file.open can only kill here: a deny without `fallback: kill` does not compile.
    writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a").replace("hook: process.exec, match: 'process.binary", "hook: file.open, match: 'file.path").replace("kill", "deny"));
    writeFileSync(join(dir, "b.yaml"), policy("b", "/bin/b2"));
    const { update, rejection } = source.reload();
    expect(rejection?.files).toEqual([join(dir, "a.yaml")]);
    expect(rejection?.diagnostics.map((d) => d.file)).toEqual([join(dir, "a.yaml")]);
    const binaries = update!.plan.hooks[0]!.dimensions[0]!.entries.map((e) => "text" in e && e.text);
    expect(binaries).toEqual(["/bin/a", "/bin/b2"]);
  });

  it("gives a new file with an error no say at all", () => {
    const { dir, source } = setup();
    writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a"));
    source.reload();
    writeFileSync(join(dir, "c.yaml"), policy("c", "/bin/c").replace("process.binary", "process.binnary"));
    const { update, rejection } = source.reload();
    expect(update).toBeUndefined();
    expect(rejection?.diagnostics[0]?.message).toBe("`process.binnary`: no such field");
    expect(rules(source)).toEqual(["a"]);
  });

  it("refuses a change that only fails together with the rest, keeping the previous plan", () => {
    const { dir, source } = setup();
    writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a"));
    source.reload();
    const before = source.current!.digest;
    writeFileSync(join(dir, "copy.yaml"), policy("a", "/bin/other"));
    const { update, rejection } = source.reload();
    expect(update).toBeUndefined();
    expect(rejection?.diagnostics.map((d) => d.code)).toEqual(["DuplicatePolicy"]);
    expect(source.current!.digest).toBe(before);
    rmSync(join(dir, "copy.yaml"));
    expect(source.reload()).toEqual({});
  });

  it("drops a deleted file's policies", () => {
    const { dir, source } = setup();
    writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a"));
    writeFileSync(join(dir, "b.yaml"), policy("b", "/bin/b"));
    source.reload();
    rmSync(join(dir, "b.yaml"));
    expect(source.reload().update?.changed).toEqual([join(dir, "b.yaml")]);
    expect(rules(source)).toEqual(["a"]);
  });

  it("notices changes on disk, including an editor's write-and-rename", async () => {
    const { dir, source } = setup();
    writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a"));
    source.reload();
    const changed = new Promise<void>((resolve) => source.watch(resolve, 10));
    writeFileSync(join(dir, ".a.yaml.swp"), policy("a", "/bin/edited"));
    renameSync(join(dir, ".a.yaml.swp"), join(dir, "a.yaml"));
    await changed;
    expect(source.reload().update?.changed).toEqual([join(dir, "a.yaml")]);
  });

  it("while watching, reads what the watchers name: changed, deleted and new files, in new directories too", async () => {
    const { dir, source } = setup();
    for (const f of ["a", "b"]) writeFileSync(join(dir, `${f}.yaml`), policy(f, `/bin/${f}`));
    source.reload();
    let fired: () => void = () => {};
    source.watch(() => fired(), 10);
    const change = async (what: () => void) => {
      const seen = new Promise<void>((resolve) => (fired = resolve));
      what();
      await seen;
      return source.reload();
    };
    expect((await change(() => writeFileSync(join(dir, "b.yaml"), policy("b", "/bin/b2")))).update?.changed).toEqual([join(dir, "b.yaml")]);
    expect((await change(() => writeFileSync(join(dir, "a.yaml"), policy("a", "/bin/a2")))).update?.changed).toEqual([join(dir, "a.yaml")]);
    expect((await change(() => rmSync(join(dir, "a.yaml")))).update?.changed).toEqual([join(dir, "a.yaml")]);
    const added = await change(() => {
      mkdirSync(join(dir, "sub"));
      writeFileSync(join(dir, "sub", "c.yaml"), policy("c", "/bin/c"));
    });
    expect(added.update?.changed).toEqual([join(dir, "sub", "c.yaml")]);
    expect(rules(source)).toEqual(["b", "c"]);
    expect((await change(() => writeFileSync(join(dir, "notes.txt"), "not a policy"))).update).toBeUndefined();
  });
});
