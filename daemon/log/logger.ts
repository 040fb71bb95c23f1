// One pino logger per process. Secrets are redacted by path as a second line of defence: the code never
// puts password or key material into log objects in the first place.
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { svc: 'flashcheck' },
      redact: { paths: ['password', '*.password', 'mqtt.password', 'config.mqtt.password'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  )
}
