// The package root, found from this file whether it runs from source (daemon/) or compiled (dist/daemon/).
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'daemon'))) return dir
    const up = dirname(dir)
    if (up === dir) throw new Error('flashcheck package root not found')
    dir = up
  }
}

export const PACKAGE_ROOT = findRoot()
