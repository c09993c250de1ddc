import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { UsageError } from './usage-error.ts';

/** Reads a YAML or JSON config file for a flag, with errors that name the file. */
export async function loadConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${path}: ${(e as Error).message}`);
  }
  try {
    return parse(text);
  } catch (e) {
    throw new UsageError(`${path}: ${(e as Error).message}`);
  }
}
