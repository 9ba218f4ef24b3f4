// A use of the client openapi-typescript generates from the served document: it type-checks
// only if operations, bodies and answers are typed as the API behaves.
import type { components, operations } from "./api";

type Schemas = components["schemas"];

const newCustomer: Schemas["CustomerInput"] = { name: "Acme Ltd", currency: "EUR" };
// @ts-expect-error a create needs its name
const nameless: Schemas["CustomerInput"] = { currency: "EUR" };
const rename: Schemas["CustomerUpdate"] = { name: "Acme Group" };
// @ts-expect-error isArchived is a boolean, never null
const archivedNull: Schemas["CustomerUpdate"] = { isArchived: null };

type CustomerPage =
    operations["listCustomers"]["responses"][200]["content"]["application/json"];
const firstName = (page: CustomerPage): string | undefined => page.items[0]?.name;

type ListQuery = NonNullable<operations["listCustomers"]["parameters"]["query"]>;
const query: ListQuery = { page: 1, pageSize: 50 };

type NotFound =
    operations["getCustomer"]["responses"][404]["content"]["application/json"];
const errorCode = (failure: NotFound): string => failure.error.code;

export { newCustomer, nameless, rename, archivedNull, firstName, query, errorCode };
