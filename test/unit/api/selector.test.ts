import { describe, expect, it } from "vitest";
import { parseSlotMapSpec } from "../../../src/api/index.js";
import { fieldSelectorStringError, labelSelectorStringError } from "../../../src/api/selector.js";

describe("list/watch selector strings", () => {
  it("accepts the label selector forms kubectl accepts", () => {
    for (const s of [
      "app=demo",
      "app==demo",
      "tier!=cache",
      "env in (a, b)",
      "env notin (c)",
      "release",
      "!legacy",
      "example.com/team=a,app=demo",
      "app=",
    ]) {
      expect(labelSelectorStringError(s), s).toBeUndefined();
    }
  });

  it("names what is wrong in a label selector", () => {
    expect(labelSelectorStringError("")).toContain("must not be empty");
    expect(labelSelectorStringError("app=de mo")).toContain('"app=de mo" is not a requirement');
    expect(labelSelectorStringError("-app=x")).toContain('"-app" in "-app=x" is not a label key');
    expect(labelSelectorStringError("env in (a,-b)")).toContain(
      '"-b" in "env in (a,-b)" is not a label value',
    );
  });

  it("accepts field selectors and names a bad requirement", () => {
    expect(fieldSelectorStringError("metadata.name=x,status.phase!=Running")).toBeUndefined();
    expect(fieldSelectorStringError("type!=kubernetes.io/service-account-token")).toBeUndefined();
    expect(fieldSelectorStringError("metadata.name")).toContain('"metadata.name" is not a requirement');
  });

  it("a SlotMap spec with a bad selector names the field and the value", () => {
    const spec = parseSlotMapSpec({
      leaseNamespace: "ns",
      resources: [{ resource: "configmaps", labelSelector: "app=de mo" }],
    });
    expect(spec.ok).toBe(false);
    if (!spec.ok) {
      expect(spec.errors[0]).toMatchObject({ field: "spec.resources[0].labelSelector", value: "app=de mo" });
    }
  });

  it("a controlled resource listed under two roots takes one set of selectors", () => {
    const spec = parseSlotMapSpec({
      leaseNamespace: "ns",
      resources: [
        { resource: "secrets", controlledResources: [{ resource: "configmaps", labelSelector: "a=1" }] },
        { resource: "services", controlledResources: [{ resource: "configmaps" }] },
      ],
    });
    expect(spec.ok).toBe(false);
    if (!spec.ok) {
      expect(spec.errors[0]?.field).toBe("spec.resources[1].controlledResources[0]");
      expect(spec.errors[0]?.message).toContain("with other selectors");
    }
  });
});
