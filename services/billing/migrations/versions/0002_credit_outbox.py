"""credit outbox: a CreditEvent per ledger entry, published to billing.credits.events

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 07:07:43.893417
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('credit_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('credit_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_outbox_sent_at'), ['sent_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('credit_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_outbox_sent_at'))

    op.drop_table('credit_outbox')
