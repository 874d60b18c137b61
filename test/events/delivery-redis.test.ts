import { usePair } from '../helpers/matrix.js';
import { runDeliverySuite } from './delivery-suite.js';

const env = usePair('memory', 'redis');
runDeliverySuite(env.pair.title, env.options);
