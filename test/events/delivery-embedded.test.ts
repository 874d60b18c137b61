import { usePair } from '../helpers/matrix.js';
import { runDeliverySuite } from './delivery-suite.js';

const env = usePair('memory', 'embedded');
runDeliverySuite(env.pair.title, env.options);
