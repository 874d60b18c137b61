import { usePair } from '../helpers/matrix.js';
import { runApiSuite } from './api-suite.js';
import { runBadInputSuite } from './bad-input-suite.js';
import { runGcSuite } from './gc-suite.js';

const env = usePair('memory', 'embedded');
runApiSuite(env.pair.title, env.options);
runBadInputSuite(env.pair.title, env.options);
runGcSuite(env.pair.title, env.options);
