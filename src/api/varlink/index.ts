/**
 * A generic Varlink implementation (https://varlink.org) over AF_UNIX stream sockets: wire framing,
 * the interface definition language, a server and a client. Nothing here is specific to holdfast's
 * own interfaces.
 *
 * @module
 */

export type {
  IdentifyPeer,
  JsonObject,
  JsonValue,
  PeerIdentity,
  VarlinkCallMessage,
  VarlinkLogger,
  VarlinkLogLevel,
  VarlinkReplyMessage,
} from './types.js';

export {
  VarlinkError,
  VarlinkErrorName,
  defaultMapError,
  invalidParameter,
  isQualifiedMemberName,
  permissionDenied,
  systemError,
} from './errors.js';

export {
  DEFAULT_MAX_MESSAGE_SIZE,
  MessageDecoder,
  VarlinkProtocolError,
  decodeMessage,
  encodeCall,
  encodeMessage,
  encodeReply,
  isJsonObject,
  parseCall,
  parseReply,
  type ParseResult,
} from './wire.js';

export {
  VarlinkIdlError,
  findError,
  findMethod,
  findType,
  formatInterface,
  isInterfaceName,
  parseInterface,
  validateParameters,
  validateValue,
  type ValidationFailure,
  type VarlinkEnumType,
  type VarlinkEnumValue,
  type VarlinkErrorDefinition,
  type VarlinkField,
  type VarlinkInterface,
  type VarlinkMember,
  type VarlinkMethodDefinition,
  type VarlinkStructType,
  type VarlinkType,
  type VarlinkTypeDefinition,
} from './idl.js';

export {
  VarlinkServer,
  type VarlinkCall,
  type VarlinkCloseOptions,
  type VarlinkHandlerResult,
  type VarlinkInterfaceImplementation,
  type VarlinkListenTarget,
  type VarlinkMethodHandler,
  type VarlinkServerOptions,
} from './server.js';

export { VarlinkClient, varlinkCall, type VarlinkCallOptions, type VarlinkConnectOptions } from './client.js';

export { handleFd } from './handle.js';
