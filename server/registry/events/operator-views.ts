// The JSON `berth events … --json` prints and /api/v1/events answers (one shape for both faces), and
// the one-line summaries the CLI prints. Times are RFC 3339 here: operators read them.
import type { ChangeRecord, DeadLetter, LoggedRecord } from '../../../storage-drivers/metadata/event-types.js';
import { expandRecord, type EventAction, type RegistryEvent } from './event.js';

export interface RecordView {
  /** Pass back as `last` for the next (older) page. */
  position: string;
  seq: number;
  time: string;
  /** The events the record stands for, in delivery order. */
  actions: EventAction[];
  record: ChangeRecord;
}

export interface DeadLetterView {
  /** The event's id: what the endpoint saw as Berth-Event-Id, and what `--id` / DELETE …/:id take. */
  id: string;
  deadAt: string;
  attempts: number;
  lastError: string;
  /** The event given up on (absent only if its record no longer expands to an event of that id). */
  event?: RegistryEvent;
  record: ChangeRecord;
}

export function recordView(logged: LoggedRecord): RecordView {
  return {
    position: logged.position,
    seq: logged.seq,
    time: new Date(logged.record.at).toISOString(),
    actions: expandRecord(logged.record).map((e) => e.action),
    record: logged.record,
  };
}

export function deadLetterView(letter: DeadLetter): DeadLetterView {
  const event = expandRecord(letter.record).find((e) => e.id === letter.id);
  return {
    id: letter.id,
    deadAt: new Date(letter.deadAt).toISOString(),
    attempts: letter.attempts,
    lastError: letter.lastError,
    ...(event === undefined ? {} : { event }),
    record: letter.record,
  };
}

const short = (digest: string) => (digest.length > 19 ? `${digest.slice(0, 19)}…` : digest);

/** What a record is about, in a few words: `team/app sha256:1a2b3c4d5e6f… tags v1,latest`. */
export function recordSubject(record: ChangeRecord): string {
  const parts: string[] = [];
  if ('repository' in record) parts.push(record.repository);
  switch (record.kind) {
    case 'manifest_put':
    case 'manifest_deleted':
      parts.push(short(record.digest));
      if (record.tags.length > 0) parts.push(`tags ${record.tags.join(',')}`);
      break;
    case 'tag_deleted':
      parts.push(`tag ${record.tag}`, short(record.digest));
      break;
    case 'pulls':
      parts.push(`${record.count} pulls`);
      break;
    case 'pull':
      parts.push(record.tag === undefined ? short(record.digest) : `tag ${record.tag}`);
      break;
    default:
      parts.push(short(record.digest));
  }
  return parts.join(' ');
}

const when = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');

/** `2026-12-02 10:00:00Z  #42  manifest.pushed,tag.moved  team/app sha256:… tags v1  by ci-bot (robot)`. */
export function recordLine(view: RecordView): string {
  const actor = `${view.record.origin.actor} (${view.record.origin.actorKind})`;
  return `${when(view.time)}  #${view.seq}  ${view.actions.join(',') || view.record.kind}  ${recordSubject(view.record)}  by ${actor}`;
}

/** `<id>  dead 2026-12-02 10:00:00Z after 3 attempts  manifest.pushed team/app …  error: HTTP 400 …`. */
export function deadLetterLine(view: DeadLetterView): string {
  const attempts = `${view.attempts} attempt${view.attempts === 1 ? '' : 's'}`;
  const what = `${view.event?.action ?? view.record.kind} ${recordSubject(view.record)}`;
  return `${view.id}  dead ${when(view.deadAt)} after ${attempts}  ${what}  error: ${view.lastError}`;
}
