// The quota contract on every metadata store (every quota script must stay within its namespace's slot).
import { runMetadataQuotaContract } from '../contract/metadata-quotas.contract.js';
import { onEveryStore } from '../helpers/metadata-stores.js';

onEveryStore('quotas', (name, stores) => runMetadataQuotaContract(name, () => stores()));
