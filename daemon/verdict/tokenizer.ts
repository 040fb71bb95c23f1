// The checkpoint's tokenizer and chat template: tokenizer.json through @huggingface/tokenizers (the
// maintained JS port of HF tokenizers), the chat template from tokenizer_config.json through
// @huggingface/jinja (the Jinja subset HF chat templates use). No template → a plain prompt.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { Template } from '@huggingface/jinja'

/** tokenizer files are missing or unreadable; the message names the file. */
export class TokenizerLoadError extends Error {
  override name = 'TokenizerLoadError'
}

type TokenField = string | { content?: string } | null | undefined

function tokenText(t: TokenField): string | undefined {
  if (typeof t === 'string') return t
  if (t && typeof t === 'object' && typeof t.content === 'string') return t.content
  return undefined
}

async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new TokenizerLoadError(`${path}: ${(e as Error).message}`)
  }
  try {
    const v = JSON.parse(text) as unknown
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object')
    return v as Record<string, unknown>
  } catch (e) {
    throw new TokenizerLoadError(`${path}: not valid JSON (${(e as Error).message})`)
  }
}

export interface ChatMessage {
  role: string
  content: string
  [field: string]: unknown
}

export class ChatTokenizer {
  /** Token ids that end a generated answer (eos and the chat turn end). */
  readonly stopIds: ReadonlySet<number>
  readonly hasTemplate: boolean

  private constructor(
    private readonly tok: Tokenizer,
    private readonly template: Template | undefined,
    private readonly vars: { bos_token?: string; eos_token?: string },
    stop: number[],
  ) {
    this.stopIds = new Set(stop)
    this.hasTemplate = template !== undefined
  }

  static async load(dir: string): Promise<ChatTokenizer> {
    const tj = await readJson(join(dir, 'tokenizer.json'), true)
    const cfg = (await readJson(join(dir, 'tokenizer_config.json'), false)) ?? {}
    let tok: Tokenizer
    try {
      tok = new Tokenizer(tj!, cfg)
    } catch (e) {
      throw new TokenizerLoadError(`${join(dir, 'tokenizer.json')}: unsupported tokenizer (${(e as Error).message})`)
    }
    let template: Template | undefined
    const raw = cfg.chat_template
    // Some checkpoints list several named templates; the default one is what chat prompts use.
    const text = typeof raw === 'string' ? raw : Array.isArray(raw) ? (raw as { name?: string; template?: string }[]).find((t) => t.name === 'default')?.template : undefined
    if (text) {
      try {
        template = new Template(text)
      } catch (e) {
        throw new TokenizerLoadError(`${join(dir, 'tokenizer_config.json')}: chat_template does not parse (${(e as Error).message})`)
      }
    }
    const bos = tokenText(cfg.bos_token as TokenField)
    const eos = tokenText(cfg.eos_token as TokenField)
    // generation_config.json's eos_token_id (a number or a list: the real model stops at <|end|> and
    // <|endoftext|>) first, then the usual turn-end tokens the vocabulary has.
    const gen = (await readJson(join(dir, 'generation_config.json'), false)) ?? {}
    const genEos = gen.eos_token_id
    const stop: number[] = []
    for (const id of Array.isArray(genEos) ? genEos : [genEos]) {
      if (id === undefined || id === null) continue
      if (!Number.isInteger(id) || (id as number) < 0) throw new TokenizerLoadError(`${join(dir, 'generation_config.json')}: eos_token_id must be a token id or a list of them, got ${JSON.stringify(genEos)}`)
      if (!stop.includes(id as number)) stop.push(id as number)
    }
    for (const t of [eos, '<|end|>', '<|endoftext|>', '<|im_end|>', '<|eot_id|>']) {
      const id = t === undefined ? undefined : tok.token_to_id(t)
      if (id !== undefined && !stop.includes(id)) stop.push(id)
    }
    return new ChatTokenizer(tok, template, { bos_token: bos, eos_token: eos }, stop)
  }

  /** Token ids of text; special tokens written in the text (from the chat template) map to their ids. */
  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids
  }

  decode(ids: number[]): string {
    if (ids.length === 0) return ''
    return this.tok.decode(ids, { skip_special_tokens: true })
  }

  /** The exact text of ids, special tokens included (to map cached tokens back to prompt characters). */
  decodeRaw(ids: number[]): string {
    if (ids.length === 0) return '' // the library refuses an empty list
    return this.tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false })
  }

  /** The prompt the model sees: the chat template with a generation prompt, or system + user as plain text. */
  render(system: string | undefined, user: string): string {
    if (!this.template) return system ? `${system}\n\n${user}\n` : `${user}\n`
    const messages = system ? [{ role: 'system', content: system }, { role: 'user', content: user }] : [{ role: 'user', content: user }]
    return this.renderChat(messages)
  }

  /** Any conversation through the chat template (messages may carry more fields, e.g. a system turn's tools). */
  renderChat(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.template) throw new TokenizerLoadError('the checkpoint has no chat template')
    return this.template.render({ messages: messages as ChatMessage[], add_generation_prompt: opts.addGenerationPrompt ?? true, ...this.vars })
  }
}
