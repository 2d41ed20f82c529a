export { Pidfd, parsePidfdId, pidOfPidfd, type PidfdInfo, type AdoptOptions } from './pidfd.js';
export { ProcessRef, type ProcessIdJson } from './process-ref.js';
export { bootId } from './boot-id.js';
export { features, describeFeatures, type Features, type FeatureDescription } from './features.js';
export { describeExit, UNKNOWN_EXIT, type ExitStatus } from './exit-status.js';
export { signalName, signalNumber } from './signals.js';
export { errnoError, hasCode } from './errors.js';
