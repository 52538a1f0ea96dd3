/**
 * The examples users copy compile: the `@example` of describeTokenStore() and the TypeScript blocks
 * of this package's README, typechecked with the repository's compiler settings against the
 * packages' sources (nothing is run: the Redis example would need a server).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import ts from 'typescript';

const root = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const source = (path: string) => readFileSync(`${root}/${path}`, 'utf8');

/** The code of every ```ts block in a TSDoc `@example` (the ` * ` prefixes taken off). */
function tsdocExamples(text: string): string[] {
  return [...text.matchAll(/@example\s*\n((?:\s*\*.*\n)+?)\s*\*\//g)].flatMap(([, block]) => {
    const lines = block!.split('\n').map((line) => line.replace(/^\s*\* ?/, ''));
    return markdownBlocks(lines.join('\n'));
  });
}

/** The code of every ```ts block of a Markdown text. */
function markdownBlocks(text: string): string[] {
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map(([, code]) => code!);
}

/** Typechecks `files` (name → code) as ES modules in the testing package's test folder. */
function diagnostics(files: Record<string, string>): string[] {
  const { config } = ts.readConfigFile(`${root}/tsconfig.tests.json`, ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, root);
  const virtual = new Map(
    Object.entries(files).map(([name, code]) => [`${root}/packages/testing/test/${name}`, code]),
  );
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.readFile = (name) => virtual.get(name) ?? readFile(name);
  host.fileExists = (name) => virtual.has(name) || fileExists(name);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language) => {
    const code = virtual.get(name);
    return code === undefined
      ? getSourceFile(name, language)
      : ts.createSourceFile(name, code, language, true);
  };
  const program = ts.createProgram([...virtual.keys()], { ...options, noEmit: true }, host);
  return ts
    .getPreEmitDiagnostics(program)
    .filter((diagnostic) => diagnostic.file === undefined || virtual.has(diagnostic.file.fileName))
    .map((diagnostic) => {
      const where = diagnostic.file?.fileName.split('/').pop() ?? '';
      const line =
        diagnostic.file && diagnostic.start !== undefined
          ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line + 1
          : 0;
      return `${where}:${line}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
    });
}

describe('examples compile', () => {
  it("describeTokenStore()'s @example and the README's blocks", () => {
    const examples = [
      ...tsdocExamples(source('packages/testing/src/describe-token-store.ts')),
      ...markdownBlocks(source('packages/testing/README.md')).filter((code) =>
        code.includes('describeTokenStore('),
      ),
    ];
    expect(examples.length).toBeGreaterThanOrEqual(3);
    const files = Object.fromEntries(
      examples.map((code, index) => [`.example-${index}.ts`, `${code}\nexport {};\n`]),
    );
    expect(diagnostics(files)).toEqual([]);
  }, 60_000);

  it('reports a broken example (the check is not vacuous)', () => {
    const broken =
      "import { describeTokenStore } from '@tessera/testing';\ndescribeTokenStore('x', () => 42);\n";
    expect(diagnostics({ '.example-broken.ts': broken }).join('\n')).toMatch(/not assignable/);
  }, 60_000);
});
