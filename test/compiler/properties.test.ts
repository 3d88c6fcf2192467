import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { compile } from "../../src/compiler/index.ts";
import { decide } from "../../src/plan/evaluate.ts";
import { policyId } from "../../src/policy/model.ts";
import { directVerdict } from "../support/oracle.ts";
import { eventArb, policiesArb } from "../support/generators.ts";

describe("compiled plan agrees with the CEL it came from", () => {
  it("gives the same verdict as direct CEL evaluation on generated policies and events", () => {
    let events = 0;
    fc.assert(
      fc.property(policiesArb, fc.array(eventArb, { minLength: 20, maxLength: 40 }), (policies, evs) => {
        const { plan, diagnostics } = compile(policies);
        // A rule whose normal form is too large is refused by design (tested elsewhere).
        fc.pre(!diagnostics.some((d) => d.code === "TooManyAlternatives"));
        expect(diagnostics).toEqual([]);
        for (const event of evs) {
          events++;
          const expected = directVerdict(policies, event);
          const got = decide(plan!, event);
          const gotKey = got && { verdict: got.slot.verdict, policyId: policyId(got.policy), policyKind: got.policy.kind, rule: got.slot.rule };
          const wantKey = expected && { verdict: expected.verdict, policyId: expected.policyId, policyKind: expected.policyKind, rule: expected.rule };
          expect(gotKey, JSON.stringify({ event, rules: policies.map((p) => p.rules.map((r) => r.match)) })).toEqual(wantKey);
        }
      }),
      { numRuns: 250 },
    );
    expect(events).toBeGreaterThan(5000);
  });

  it("is deterministic: shuffled policy order gives a byte-identical plan", () => {
    fc.assert(
      fc.property(policiesArb.filter((ps) => new Set(ps.map((p) => p.kind + policyId(p))).size === ps.length), fc.func(fc.integer()), (policies, rnd) => {
        const shuffled = [...policies].sort((a, b) => rnd(a.name + a.kind) - rnd(b.name + b.kind));
        expect(JSON.stringify(compile(shuffled).plan)).toBe(JSON.stringify(compile(policies).plan));
      }),
      { numRuns: 100 },
    );
  });
});
