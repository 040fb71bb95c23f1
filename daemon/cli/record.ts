export async function record(_argv: string[]): Promise<number> {
  return 2
}
