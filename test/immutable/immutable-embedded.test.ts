import { usePair } from '../helpers/matrix.js';
import { runImmutableSuite } from './immutable-suite.js';

runImmutableSuite(usePair('memory', 'embedded'));
