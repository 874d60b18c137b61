import { usePair } from '../helpers/matrix.js';
import { runRetentionSuite } from './retention-suite.js';

const env = usePair('memory', 'redis');
runRetentionSuite(env.pair.title, env.options);
