// The events contract on every metadata store (every event script must stay within one slot: a
// repository's own, or the log's `{events}`).
import { runMetadataEventsContract } from '../contract/metadata-events.contract.js';
import { onEveryStore } from '../helpers/metadata-stores.js';

onEveryStore('events', runMetadataEventsContract);
