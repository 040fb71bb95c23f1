// The one loader of the project's native addon (native/, built by node-gyp during `npm ci`): the SambaY
// kernel, sd_notify and the CPU probe all live in it, so every user goes through here for the path and
// the error a missing build gives.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../paths.js'

export const ADDON_PATH = join(PACKAGE_ROOT, 'native', 'build', 'Release', 'flashcheck_kernel.node')

let addon: unknown

/** The addon's exports, loaded once; throws with the build command when it is missing or does not load. */
export function loadAddon<T>(): T {
  if (addon === undefined) {
    try {
      addon = createRequire(import.meta.url)(ADDON_PATH)
    } catch (err) {
      throw new Error(
        `native kernel not built (${ADDON_PATH}): run \`npm ci\` or \`npx node-gyp rebuild --directory=native\`\n` +
          (err instanceof Error ? err.message : String(err)),
      )
    }
  }
  return addon as T
}
