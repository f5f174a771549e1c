// Package loaxa is the controller's domain: the nouns officers and
// technicians work with (areas, nodes, content, announcements, deliveries,
// events, users) and the services that act on them, as interfaces.
//
// Implementations live in sub-packages of controller named after what they
// wrap: bolt (storage), http (API), mqtt (broker and messaging), schedule
// (compiling announcements into desired states), media (audio ingest). They
// import this package and protocol, never each other; controller/app wires
// them together.
package loaxa
