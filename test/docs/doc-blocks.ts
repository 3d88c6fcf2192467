import { spawn } from "node:child_process";

// Runnable shell blocks of the documentation: a ```sh block right after an HTML comment
// `<!-- <kind>: <name> -->` is run by a test as written. Its full-line `# ...` comments are
// output the reader is promised, with `…` standing for anything.

/** The ```sh blocks marked `<!-- kind: name -->`, in order; indented ones (in a list) dedented. */
export function markedBlocks(markdown: string, kind: string, name: string): string[] {
  const marked = new RegExp(`^( *)<!-- ${kind}: ${name} -->\\n\\1\`\`\`sh\\n([\\s\\S]*?)^\\1\`\`\``, "gm");
  return [...markdown.matchAll(marked)].map((m) => m[2]!.split("\n").map((l) => l.slice(m[1]!.length)).join("\n"));
}

/** A block's commands: its lines without comments and blank lines. */
export const commands = (block: string): string[] =>
  block.split("\n").map((l) => l.replace(/\s+#.*$/, "").trim()).filter((l) => l && !l.startsWith("#"));

const collapse = (s: string) => s.replace(/\s+/g, " ").trim();

/** The output lines a block promises: its full-line comments, as patterns. */
export function promisedLines(block: string): { text: string; pattern: RegExp }[] {
  return block.split("\n").filter((l) => l.startsWith("# ")).map((l) => {
    const text = collapse(l.slice(2));
    const parts = text.split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return { text, pattern: new RegExp(`^${parts.join(".*")}$`) };
  });
}

/** The promised lines that no line of `output` matches (whitespace runs count as one space). */
export function unkeptPromises(blocks: string[], output: string): string[] {
  const lines = output.split("\n").map(collapse);
  return blocks.flatMap(promisedLines).filter(({ pattern }) => !lines.some((l) => pattern.test(l))).map(({ text }) => text);
}

export interface ShellResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a script in bash from `cwd`, in its own process group. When it ends, or after
 * `timeoutMs`, whatever it left running in the background (an agent a block started) is
 * killed with the group, so a failed run leaves no agent behind.
 */
export function runShell(script: string, cwd: string, timeoutMs: number): Promise<ShellResult> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", script], { cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const killGroup = () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // the group is already gone
      }
    };
    const timer = setTimeout(() => {
      stderr += `\n(timed out after ${timeoutMs} ms)`;
      killGroup();
    }, timeoutMs);
    child.once("close", (status, signal) => {
      clearTimeout(timer);
      killGroup();
      resolve({ status, signal, stdout, stderr });
    });
  });
}
