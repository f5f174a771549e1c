package agent

// LeadIn is leadIn, for the tests of package agent_test.
const LeadIn = leadIn
