"""The GraphQL schema: per-feature Query/Mutation types merged, limits and error codes."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types

from shared.api.graphql.analytics_api import AnalyticsQuery
from shared.api.graphql.audit_api import AuditLogQuery, AuditMutations
from shared.api.graphql.control_api import ControlMutation
from shared.api.graphql.errors import ErrorCodes, log_errors
from shared.api.graphql.evaluations_api import EvaluationsQuery
from shared.api.graphql.execution_api import ExecutionMutation, ExecutionQuery
from shared.api.graphql.flow_api import FlowQuery
from shared.api.graphql.import_api import ImportMutation
from shared.api.graphql.limits import limit_extensions
from shared.api.graphql.migration import MigrationMutation
from shared.api.graphql.subscriptions import Subscription
from shared.api.graphql.templates import TemplateMutation, TemplateQuery
from shared.api.graphql.tenant_api import TenantMutation, TenantQuery
from shared.api.graphql.version_diff import VersionDiffQuery
from shared.api.graphql.workflow_api import WorkflowMutation, WorkflowQuery

Query = merge_types(
    "Query",
    (WorkflowQuery, ExecutionQuery, FlowQuery, AuditLogQuery, AnalyticsQuery, TenantQuery),
)
Mutation = merge_types(
    "Mutation",
    (WorkflowMutation, ImportMutation, ExecutionMutation, ControlMutation, TenantMutation),
)
Query = merge_types("Query", (Query, TemplateQuery))  # the template gallery
Query = merge_types("Query", (Query, VersionDiffQuery))  # version diff
Query = merge_types("Query", (Query, EvaluationsQuery))  # guardrail evaluations (docs/ai.md)
Mutation = merge_types("Mutation", (Mutation, TemplateMutation))
Mutation = merge_types("Mutation", (Mutation, MigrationMutation))  # docs/migration.md


class WorkflowSchema(strawberry.Schema):
    """Logs unexpected failures only: refused operations are the client's business."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        log_errors(errors)


schema = WorkflowSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[*limit_extensions(), ErrorCodes, AuditMutations],
)
"""The schema served by ``handle_http`` and by the stream server's WebSocket app."""

__all__ = ["schema"]
