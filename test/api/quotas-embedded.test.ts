import { runQuotaSuite } from './quota-suite.js';
import { usePair } from '../helpers/matrix.js';

const env = usePair('memory', 'embedded');
runQuotaSuite(env.pair.title, () => env.options());
