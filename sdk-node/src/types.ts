/**
 * Names for the API's shapes, all taken from the generated `schema.ts` (which
 * `npm run gen` rebuilds from openapi/openapi.json), so they follow the server.
 */
import type { components } from './schema.js';

type S = components['schemas'];

export type Room = S['Room'];
export type RoomPage = S['RoomPage'];
export type ActiveUser = S['ActiveUser'];
export type PresenceState = S['PresenceState'];
export type ApiKey = S['ApiKey'];
export type CreatedApiKey = S['CreatedApiKey'];
export type RolledKey = S['RolledKey'];
export type KeyKind = S['KeyKindView'];
export type Scope = S['ScopeView'];
export type CreateToken = S['CreateToken'];
export type CreatedToken = S['CreatedToken'];
export type ProjectUsage = S['ProjectUsage'];
export type TenantUsage = S['TenantUsage'];
export type Granularity = S['GranularityView'];
export type AuditEntry = S['AuditEntry'];
export type AuditPage = S['AuditPage'];
export type Tenant = S['Tenant'];
export type Project = S['Project'];
export type Me = S['Me'];
export type Broadcasted = S['Broadcasted'];
export type Webhook = S['Webhook'];
export type WebhookWithSecret = S['WebhookWithSecret'];
export type Delivery = S['Delivery'];
export type DeliveryPage = S['DeliveryPage'];
export type TestDelivery = S['TestDelivery'];
export type ProjectEvent = S['ProjectEvent'];
export type EventPage = S['EventPage'];
export type Version = S['VersionView'];
export type VersionPage = S['VersionPageView'];
export type NamedVersion = S['NamedVersion'];
export type Diff = S['DiffView'];
export type Change = S['ChangeView'];
export type Restored = S['RestoredView'];
export type Forked = S['Forked'];

/** Room name (exact) or prefix ending in `*` → scopes. */
export type Permissions = CreateToken['permissions'];
