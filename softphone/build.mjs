// Bundles softphone/src/app.js (with JsSIP) into softphone/dist/app.js and
// copies the static files. Usage: npm run build
import { build } from 'esbuild';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const src = path.join(here, 'src');
const dist = path.join(here, 'dist');

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: [path.join(src, 'app.js')],
  outfile: path.join(dist, 'app.js'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  minify: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});

// Static files: everything in src/ that is not a JS module.
for (const entry of await readdir(src, { withFileTypes: true })) {
  if (entry.isFile() && !/\.m?js$/.test(entry.name)) {
    await cp(path.join(src, entry.name), path.join(dist, entry.name));
  }
}

// Licences of the npm packages that ended up in the bundle.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) {
    packages.set(path.resolve(root, m[1]), true);
  }
}
const notices = [];
for (const dir of [...packages.keys()].sort()) {
  const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8'));
  const licenceFile = (await readdir(dir)).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
  const text = licenceFile ? await readFile(path.join(dir, licenceFile), 'utf8') : `License: ${pkg.license}`;
  notices.push(`${pkg.name}@${pkg.version} (${pkg.license})\n\n${text.trim()}\n`);
}
await writeFile(path.join(dist, 'THIRD-PARTY-LICENSES.txt'),
  `Third-party software bundled in app.js\n${'='.repeat(38)}\n\n${notices.join(`\n${'-'.repeat(72)}\n\n`)}`);

const files = (await readdir(dist)).sort();
for (const required of ['index.html', 'app.js', 'style.css']) {
  if (!existsSync(path.join(dist, required))) {
    throw new Error(`build: ${required} missing from dist`);
  }
}
console.log(`softphone: built ${path.relative(root, dist)}/ (${files.join(', ')})`);
