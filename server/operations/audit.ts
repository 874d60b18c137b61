import { closeSync, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { userInfo } from 'node:os';
import type { BerthConfig } from '../config.js';
import type { GcSummary } from '../registry/gc/collector.js';
import { stdoutLines } from './stdout-batch.js';

/** Security-relevant events, named as operators search for them. */
export type AuditAction =
  | 'push'
  | 'pull'
  | 'delete'
  | 'tag_moved'
  | 'immutable_refused'
  | 'blob_push'
  | 'blob_mount'
  | 'blob_delete'
  | 'login_failed'
  | 'access_denied'
  | 'user_added'
  | 'user_removed'
  | 'user_changed'
  | 'robot_added'
  | 'robot_removed'
  | 'robot_changed'
  | 'gc_manifest_deleted'
  | 'gc_pass'
  | 'gc_run'
  | 'retention_tag_deleted'
  | 'retention_manifest_deleted'
  | 'retention_refused'
  | 'retention_run'
  | 'replication_tag_copied'
  | 'replication_tag_overwritten'
  | 'replication_tag_backed_up'
  | 'replication_tag_deleted'
  | 'replication_conflict_skipped'
  | 'replication_pass'
  | 'events_replayed'
  | 'events_discarded'
  | 'api_tag_deleted'
  | 'api_manifest_deleted';

/** What a garbage-collection pass (gc_pass) or a `berth gc` run (gc_run, with its passes) did. */
export type GcAuditCounts = Pick<
  GcSummary,
  'manifestsDeleted' | 'blobsQuarantined' | 'blobsDeleted' | 'bytesFreed' | 'linksRemoved' | 'uploadsExpired' | 'errors'
> & {
  passes?: number;
};

export interface AuditEvent {
  action: AuditAction;
  /** Who did it: a user or robot name, 'anonymous', the operator account for CLI changes, 'gc' or 'retention' for background jobs. */
  actor: string;
  actorKind?: 'user' | 'robot' | 'anonymous' | 'operator' | 'system' | undefined;
  repository?: string | undefined;
  digest?: string | undefined;
  tag?: string | undefined;
  /** For tag_moved: the digest the tag pointed at before. */
  previousDigest?: string | undefined;
  /** Absent for changes made from the command line. */
  clientAddress?: string | undefined;
  requestId?: string | undefined;
  /** Short machine-friendly reason, e.g. for login_failed: 'bad_password', 'unknown_user'. */
  reason?: string | undefined;
  /** For immutable_refused: the rule that made the tag immutable (reason is the operation refused); for replication lines: the replication rule. */
  rule?: string | undefined;
  /** For user and robot changes: whose account changed. */
  subject?: string | undefined;
  gc?: GcAuditCounts | undefined;
  /** For events_replayed / events_discarded: the endpoint (reason says what: since:<time>, dead_letters, id:<id>, all). */
  endpoint?: string | undefined;
  /** For retention lines: the policy that decided. */
  policy?: string | undefined;
  /** What a retention run (retention_run) did. */
  retention?: RetentionAuditCounts | undefined;
  /** What a replication pass (replication_pass) did. */
  replication?: ReplicationAuditCounts | undefined;
}

/** What a reconcile pass did, on its replication_pass line. */
export interface ReplicationAuditCounts {
  result: 'ok' | 'partial' | 'failed';
  repositories: number;
  /** Tags by outcome (copied, in_sync, conflict_skipped, …). */
  tags: Partial<Record<string, number>>;
  failures: number;
  bytes: number;
}

/** What a retention run did, on its retention_run line. */
export interface RetentionAuditCounts {
  repositories: number;
  tagsDeleted: number;
  tagsChanged: number;
  manifestsDeleted: number;
  refused: number;
  busy: number;
  failed: number;
  forced?: boolean;
}

/** Where audit lines go. `write` receives one complete line including its newline. */
export interface AuditSink {
  write(line: string): void;
  close(): Promise<void>;
}

/** Appends to a file opened once at start-up, so an unwritable path fails fast with a clear message. */
export class FileAuditSink implements AuditSink {
  private readonly stream: WriteStream;
  private failure: Error | undefined;

  constructor(readonly path: string) {
    let fd: number;
    try {
      fd = openSync(path, 'a', 0o640);
    } catch (err) {
      throw new Error(`cannot open audit log ${path}: ${(err as Error).message}`);
    }
    try {
      this.stream = createWriteStream('', { fd, autoClose: true });
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.stream.on('error', (err) => {
      // Losing audit lines must be loud, but must not take the registry down with it.
      if (!this.failure) process.stderr.write(`berth: audit log ${path} failed: ${err.message}\n`);
      this.failure = err;
    });
  }

  write(line: string): void {
    if (!this.failure) this.stream.write(line);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stream.closed || this.failure) return resolve();
      this.stream.end(() => resolve());
    });
  }
}

export class StdoutAuditSink implements AuditSink {
  write(line: string): void {
    stdoutLines.write(line);
  }
  async close(): Promise<void> {}
}

/** For a command whose stdout is its result (`berth gc --json`): audit lines meant for stdout go to stderr. */
export class StderrAuditSink implements AuditSink {
  write(line: string): void {
    process.stderr.write(line);
  }
  async close(): Promise<void> {}
}

/** Keeps events in memory, for tests that assert on them. */
export class MemoryAuditSink implements AuditSink {
  readonly lines: string[] = [];
  get events(): (AuditEvent & { time: string })[] {
    return this.lines.map((line) => JSON.parse(line) as AuditEvent & { time: string });
  }
  write(line: string): void {
    this.lines.push(line);
  }
  async close(): Promise<void> {}
}

/**
 * One JSON line per event, `{"time":…,"audit":true,"action":…,…}`, kept apart from the request log
 * (or, on stdout, marked with `"audit":true` so a log shipper can split the two).
 */
export class AuditLog {
  constructor(private readonly sink: AuditSink | null) {}

  static fromConfig(config: Pick<BerthConfig, 'audit'>): AuditLog {
    if (!config.audit.enabled) return new AuditLog(null);
    const output = config.audit.output;
    return new AuditLog(output === 'stdout' ? new StdoutAuditSink() : new FileAuditSink(output));
  }

  static disabled(): AuditLog {
    return new AuditLog(null);
  }

  get enabled(): boolean {
    return this.sink !== null;
  }

  emit(event: AuditEvent): void {
    if (!this.sink) return;
    const line: Record<string, unknown> = { time: new Date().toISOString(), audit: true };
    for (const [key, value] of Object.entries(event)) if (value !== undefined) line[key] = value;
    this.sink.write(`${JSON.stringify(line)}\n`);
  }

  close(): Promise<void> {
    return this.sink ? this.sink.close() : Promise.resolve();
  }
}

export type OperatorEvent = Omit<AuditEvent, 'actor' | 'actorKind' | 'clientAddress' | 'requestId'> & { actor?: string };

/** An audit log for one command-line run: every event is the operator's. Close it when the command ends. */
export interface OperatorAudit {
  emit(event: OperatorEvent): void;
  close(): Promise<void>;
}

/**
 * Opens the configured audit log for events of a command-line run, by the operating system account
 * that ran it (there is no client address). `stdout: 'stderr'` keeps stdout for the command's output.
 */
export function openOperatorAudit(config: Pick<BerthConfig, 'audit'>, options: { stdout?: 'stdout' | 'stderr' } = {}): OperatorAudit {
  const audit =
    config.audit.enabled && config.audit.output === 'stdout' && options.stdout === 'stderr' ? new AuditLog(new StderrAuditSink()) : AuditLog.fromConfig(config);
  const actor = operatorName();
  return {
    emit: (event) => audit.emit({ ...event, actor: event.actor ?? actor, actorKind: 'operator' }),
    close: () => audit.close(),
  };
}

/** For `berth user …` / `berth robot …`: records one change made from the command line, then closes the stream. */
export async function auditOperatorAction(config: Pick<BerthConfig, 'audit'>, event: OperatorEvent): Promise<void> {
  const audit = openOperatorAudit(config);
  try {
    audit.emit(event);
  } finally {
    await audit.close();
  }
}

function operatorName(): string {
  try {
    return userInfo().username;
  } catch {
    // No passwd entry for the uid (common in containers).
    return `uid:${process.getuid?.() ?? 'unknown'}`;
  }
}
