import { usePair } from '../helpers/matrix.js';
import { runRetentionSuite } from './retention-suite.js';

const env = usePair('memory', 'embedded');
runRetentionSuite(env.pair.title, env.options);
