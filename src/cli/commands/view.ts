/** `kubectl slotmap view <slotmap>`: the 16384 slots as a coloured grid, or an SVG picture. */
import fs from "node:fs";
import type { CommandContext } from "../context.js";
import { checkName } from "../format.js";
import { CliError, UsageError } from "../io.js";
import { fetchSlotMap, type LoadedSlotMap, shardState } from "../model.js";
import { pictureOf, type SlotPicture } from "../render/colors.js";
import { renderTerminal } from "../render/grid.js";
import { renderSvg } from "../render/svg.js";

/** When to use colours. */
export type ColorMode = "auto" | "always" | "never";

/** Options of `view`. */
export interface ViewOptions {
  /** `--svg FILE` (`-` for stdout). */
  svg?: string | undefined;
  color: string;
}

/** The picture of a SlotMap: shards in status order, each noted with its state. */
export function pictureOfSlotMap(l: LoadedSlotMap): SlotPicture {
  const shards = l.status?.shards ?? [];
  return pictureOf(
    l.table,
    shards.map((s) => s.name),
    new Map(shards.map((s) => [s.name, shardState(s)])),
  );
}

/** Title line of a picture. */
export function titleOf(l: LoadedSlotMap): string {
  return `SlotMap ${l.name}, assignment generation ${l.table.generation}`;
}

/** Resolves `--color`: auto means a terminal without NO_COLOR. */
export function useColor(mode: string, ctx: CommandContext): boolean {
  if (mode === "always") return true;
  if (mode === "never") return false;
  if (mode !== "auto") throw new UsageError(`--color ${JSON.stringify(mode)}: must be auto, always or never`);
  return ctx.io.stdout.isTTY === true && !ctx.io.env.NO_COLOR;
}

/** Runs `view`. */
export async function runView(ctx: CommandContext, name: string, opts: ViewOptions): Promise<void> {
  const color = useColor(opts.color, ctx);
  if (opts.svg === "") throw new UsageError('--svg "": must name a file (or - for stdout)');
  const l = await fetchSlotMap(ctx.client(), checkName(name, "slotmap"));
  const picture = pictureOfSlotMap(l);
  if (opts.svg !== undefined) {
    const svg = renderSvg(picture, titleOf(l));
    if (opts.svg === "-") {
      ctx.io.stdout.write(svg);
      return;
    }
    try {
      fs.writeFileSync(opts.svg, svg);
    } catch (err) {
      throw new CliError(`--svg ${JSON.stringify(opts.svg)}: cannot write: ${(err as Error).message}`);
    }
    ctx.io.stdout.write(
      `wrote ${opts.svg} (${l.table.shards.length} shards, generation ${l.table.generation})\n`,
    );
    return;
  }
  ctx.io.stdout.write(renderTerminal(picture, titleOf(l), color));
}
