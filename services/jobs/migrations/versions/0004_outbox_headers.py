"""outbox headers: Kafka headers (x-request-id, event-type, schema-version) of each record

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:06:30.749369
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        # rows already in the outbox are sent without headers
        batch_op.add_column(sa.Column('headers', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('headers')
