import { describe, expect, it } from "vitest";
import { placementFingerprint } from "../../../src/slots/index.js";

describe("placementFingerprint", () => {
  const base = [
    {
      group: "apps",
      resource: "deployments",
      controlledResources: [{ resource: "configmaps" }, { resource: "secrets" }],
    },
    { resource: "services" },
  ];

  it("is 16 hex digits and ignores the order of entries and of controlled resources", () => {
    const fp = placementFingerprint(base);
    expect(fp).toMatch(/^[0-9a-f]{16}$/);
    expect(
      placementFingerprint([
        { resource: "services" },
        {
          group: "apps",
          resource: "deployments",
          controlledResources: [{ resource: "secrets" }, { resource: "configmaps", group: "" }],
        },
      ]),
    ).toBe(fp);
  });

  it("changes when a resource moves between roots and controlled resources, or a root is added", () => {
    const fp = placementFingerprint(base);
    const moved = [
      { group: "apps", resource: "deployments", controlledResources: [{ resource: "configmaps" }] },
      { resource: "services" },
      { resource: "secrets" },
    ];
    expect(placementFingerprint(moved)).not.toBe(fp);
    expect(placementFingerprint([...base, { resource: "pods" }])).not.toBe(fp);
    // The group is part of the name: deployments.apps is not deployments.
    expect(placementFingerprint([{ resource: "deployments" }])).not.toBe(
      placementFingerprint([{ group: "apps", resource: "deployments" }]),
    );
  });
});
