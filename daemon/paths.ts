// The package root, found from this file whether it runs from source (daemon/) or compiled (dist/daemon/),
// in a checkout or installed.
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    // An installed package (deploy/install.sh) ships dist/ without the daemon/ sources.
    if (existsSync(join(dir, 'package.json')) && (existsSync(join(dir, 'daemon')) || existsSync(join(dir, 'dist', 'daemon')))) return dir
    const up = dirname(dir)
    if (up === dir) throw new Error('flashcheck package root not found')
    dir = up
  }
}

export const PACKAGE_ROOT = findRoot()
