export async function replay(_argv: string[]): Promise<number> {
  return 2
}
